//! aliquot-store
