//! Small macros shared by the domain types.

/// A closed set of snake_case names: `as_str`, `ALL`, `Display` and a strict `FromStr`.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::error::Error;

            fn from_str(s: &str) -> Result<Self, $crate::error::Error> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err($crate::error::Error::new(
                        $crate::error::ErrorCode::InvalidInput,
                        format!(
                            "unknown {} `{}`; expected one of: {}",
                            $what,
                            s.chars().take(32).collect::<String>(),
                            [$($text),*].join(", ")
                        ),
                    )),
                }
            }
        }
    };
}
pub(crate) use string_enum;
