//! aliquot-server
