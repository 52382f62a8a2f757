//! Machine-readable error codes shared by every domain error.
//!
//! Every fallible constructor in this crate returns a typed error (a `thiserror` enum) whose
//! `Display` text names the problem for a human, and whose [`DomainError::code`] is a stable,
//! snake_case machine code that the HTTP layer can put into `{"error":{"code","message","field"}}`.
//! [`DomainError::field`] names the input field the problem belongs to, where the error knows it.
//!
//! Codes are part of the public contract: never rename one, only add new ones.

/// A domain error with a stable machine code.
pub trait DomainError: std::error::Error {
    /// Stable snake_case code, e.g. `accession_check`.
    fn code(&self) -> &'static str;

    /// The input field the problem is about, when the error knows it (e.g. `mrn`).
    fn field(&self) -> Option<&'static str> {
        None
    }
}

/// Implements [`DomainError`] for a type that has inherent `code()` and `field()` methods.
macro_rules! impl_domain_error {
    ($($ty:ty),+ $(,)?) => {
        $(
            impl $crate::error::DomainError for $ty {
                fn code(&self) -> &'static str {
                    <$ty>::code(self)
                }
                fn field(&self) -> Option<&'static str> {
                    <$ty>::field(self)
                }
            }
        )+
    };
}
pub(crate) use impl_domain_error;
