//! `Debug` for records that hold patient data, passwords or tokens: every field is named
//! either shown or redacted, and the record is destructured without `..`, so a field added
//! later does not compile until someone decides which it is. Ids, timestamps and statuses
//! stay visible for debugging; patient data, free text and secrets print as `<redacted>`.

/// What a redacted field prints.
pub(crate) struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

macro_rules! redacted_debug {
    ($ty:ident { shown: [$($s:ident),* $(,)?], redacted: [$($r:ident),* $(,)?] $(,)? }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let $ty { $($s,)* $($r,)* } = self;
                $(let _ = $r;)*
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($s), $s))*
                    $(.field(stringify!($r), &$crate::redact::Redacted))*
                    .finish()
            }
        }
    };
}
pub(crate) use redacted_debug;
