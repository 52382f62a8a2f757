//! Issue 16, beyond what was found: the second factor (`mfa`), electronic signatures
//! (`signature`) and separation of duties for privileged roles (`grants`).
pub mod grants;
pub mod mfa;
pub mod signature;

pub use grants::{PRIVILEGED_ROLES, RoleGrantView};
pub use mfa::{MFA_REQUIRED_SETTING, MFA_ROLES, MfaEnrolment, MfaStatus, SecondFactor};
pub use signature::{Signature, SignatureInput, VERIFICATION_SIGNATURE_SETTING};
