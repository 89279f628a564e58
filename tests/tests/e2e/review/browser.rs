//! The console in a real headless Chromium (filled in below).
