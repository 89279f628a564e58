//! Seedling server library.
