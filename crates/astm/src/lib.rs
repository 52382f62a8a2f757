//! aliquot-astm
