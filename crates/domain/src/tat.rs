//! tat
