//! Seedling reference device client.
