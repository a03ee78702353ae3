//! Names of the enums that are stored and sent by name (card, request and registration states).

/// Implements `as_str`, [`std::str::FromStr`] and [`std::fmt::Display`] for a state enum from one
/// table of names, so that the three can never disagree. `$what` names the kind of value in the
/// error for an unknown name (`unknown card state 'melted'`).
macro_rules! stored_names {
    ($ty:ident, $what:literal { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The wire and database name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err(format!(concat!("unknown ", $what, " '{}'"), other)),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use stored_names;
