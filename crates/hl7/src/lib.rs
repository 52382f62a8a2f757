//! aliquot-hl7
