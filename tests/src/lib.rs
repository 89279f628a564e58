//! Test harness for Seedling end-to-end tests.
