//! aliquot-domain
