//! aliquot-app
