//! Password rotation primitives: read an account's shadow hash, verify a password against it
//! (here, never on the host), set a new password as a `$6$` hash through `chpasswd -e`.

use std::str::FromStr;

use sha_crypt::{CustomizedPasswordHasher as _, PasswordVerifier as _, ShaCrypt};
use warrant_core::Secret;

use crate::error::{HostSshError, Result};
use crate::key::ManagedKey;
use crate::parse::shadow_field;
use crate::session::{HostTarget, Session};

/// SHA-512-crypt rounds for hashes Warrant sets: twenty times glibc's default of 5,000,
/// about 50 ms per login on a current CPU.
pub const SHA512_CRYPT_ROUNDS: u32 = 100_000;
/// Random salt bytes per hash (16 characters once encoded, the most SHA-crypt uses).
const SALT_BYTES: usize = 12;
/// The most SHA-crypt rounds a hash read from a host may ask for before verifying it.
const MAX_SHA_CRYPT_ROUNDS: u32 = 10_000_000;
/// The most memory (bytes) a yescrypt hash read from a host may ask for before verifying it.
const MAX_YESCRYPT_MEMORY: u64 = 1 << 30;
/// The longest Linux user name (`LOGIN_NAME_MAX` - 1 on glibc is larger; shadow-utils
/// accepts 32).
pub const MAX_ACCOUNT_NAME: usize = 32;

/// Checks that `name` is a Linux user name before it goes anywhere near a shell: 1 to 32
/// characters, a letter or `_` first, then letters, digits, `_`, `.` and `-`, optionally
/// ending in `$` (Samba machine accounts).
pub fn validate_account_name(name: &str) -> Result<()> {
    let invalid = |reason: &'static str| HostSshError::InvalidAccountName {
        name: name.chars().take(40).collect(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > MAX_ACCOUNT_NAME {
        return Err(invalid("it is longer than 32 characters"));
    }
    let body = name.strip_suffix('$').unwrap_or(name);
    let mut chars = body.chars();
    if !chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
    {
        return Err(invalid("it must start with a letter or _"));
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(invalid(
            "only letters, digits, _, . and - are allowed (and a final $)",
        ));
    }
    Ok(())
}

/// Whether `password` matches the crypt(3) hash `hash` (a shadow password field). Runs here;
/// nothing is sent anywhere.
///
/// Supported: SHA-512-crypt (`$6$`), SHA-256-crypt (`$5$`) and yescrypt (`$y$`, Debian's and
/// Ubuntu's default). A locked (`!…`), disabled (`*…`) or empty field matches no password.
/// Other schemes (`$1$` MD5, `$2b$` bcrypt, `$gy$`, `$7$`, DES) give
/// [`HostSshError::UnsupportedHash`]. Hashes asking for more than 10 million SHA-crypt
/// rounds or 1 GiB of yescrypt memory are refused as malformed rather than computed.
pub fn verify_password(hash: &str, password: &Secret<String>) -> Result<bool> {
    if hash.is_empty() || hash.starts_with(['!', '*']) {
        return Ok(false);
    }
    let pw = password.expose().as_bytes();
    let verdict = if let Some(rest) = hash
        .strip_prefix("$6$")
        .or_else(|| hash.strip_prefix("$5$"))
    {
        check_sha_crypt_rounds(rest)?;
        ShaCrypt::default().verify_password(pw, hash)
    } else if let Some(rest) = hash.strip_prefix("$y$") {
        check_yescrypt_cost(rest)?;
        yescrypt::Yescrypt::default().verify_password(pw, hash)
    } else {
        return Err(unsupported(hash));
    };
    match verdict {
        Ok(()) => Ok(true),
        Err(sha_crypt::password_hash::Error::PasswordInvalid) => Ok(false),
        // The error names what is wrong with the structure, never the hash.
        Err(e) => Err(HostSshError::MalformedHash(e.to_string())),
    }
}

fn check_sha_crypt_rounds(rest: &str) -> Result<()> {
    let Some(rounds) = rest.strip_prefix("rounds=") else {
        return Ok(());
    };
    let digits = rounds.split('$').next().unwrap_or_default();
    match digits.parse::<u32>() {
        Ok(n) if n <= MAX_SHA_CRYPT_ROUNDS => Ok(()),
        Ok(_) => Err(HostSshError::MalformedHash(format!(
            "more than {MAX_SHA_CRYPT_ROUNDS} SHA-crypt rounds"
        ))),
        Err(_) => Err(HostSshError::MalformedHash(
            "SHA-crypt rounds are not a number".to_owned(),
        )),
    }
}

fn check_yescrypt_cost(rest: &str) -> Result<()> {
    let field = rest.split('$').next().unwrap_or_default();
    let params = yescrypt::Params::from_str(field)
        .map_err(|e| HostSshError::MalformedHash(format!("yescrypt parameters: {e}")))?;
    // yescrypt's big buffer is 128 · r · N bytes (plus 128 · r · p, small).
    let memory = 128u64
        .saturating_mul(u64::from(params.r()))
        .saturating_mul(params.n().saturating_add(u64::from(params.p())));
    if memory > MAX_YESCRYPT_MEMORY {
        return Err(HostSshError::MalformedHash(format!(
            "yescrypt parameters ask for {} MiB of memory",
            memory >> 20
        )));
    }
    Ok(())
}

fn unsupported(hash: &str) -> HostSshError {
    let (scheme, reason) = if let Some(rest) = hash.strip_prefix('$') {
        let id = rest.split('$').next().unwrap_or_default();
        let reason = match id {
            "1" => "MD5-crypt is obsolete; set a new password (Warrant writes $6$)",
            "2a" | "2b" | "2x" | "2y" => "bcrypt is not supported; supported are $6$, $5$ and $y$",
            "gy" => "gost-yescrypt is not supported; supported are $6$, $5$ and $y$",
            _ => "supported are $6$ (SHA-512-crypt), $5$ (SHA-256-crypt) and $y$ (yescrypt)",
        };
        (
            format!("${}$", id.chars().take(8).collect::<String>()),
            reason,
        )
    } else {
        (
            "DES".to_owned(),
            "traditional DES crypt is obsolete; set a new password (Warrant writes $6$)",
        )
    };
    HostSshError::UnsupportedHash { scheme, reason }
}

/// A new SHA-512-crypt hash of `password` with a random salt and [`SHA512_CRYPT_ROUNDS`]:
/// `$6$rounds=100000$<16 salt chars>$<86 hash chars>`, what `chpasswd -e` takes.
pub fn hash_password(password: &Secret<String>) -> Result<Secret<String>> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt).map_err(|_| HostSshError::Random)?;
    let params = sha_crypt::Params::new(SHA512_CRYPT_ROUNDS)
        .map_err(|e| HostSshError::MalformedHash(e.to_string()))?;
    let hash = ShaCrypt::SHA512
        .hash_password_customized(password.expose().as_bytes(), &salt, None, None, params)
        .map_err(|e| HostSshError::MalformedHash(e.to_string()))?;
    Ok(Secret::new(hash.as_str().to_owned()))
}

/// Prints the account's shadow line; exit 3 when there is none. `getent` exits 2 for "not
/// found" and is the one tool that asks NSS the way the system does.
const SHADOW_SCRIPT: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; \
     if getent shadow \"$1\"; then :; else s=$?; [ \"$s\" = 2 ] && exit 3; exit \"$s\"; fi";
/// `chpasswd -e` with `name:hash` on stdin; exit 3 when the account does not exist (checked
/// first, so the answer does not depend on chpasswd's wording).
const CHPASSWD_SCRIPT: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; \
     getent passwd \"$1\" >/dev/null || exit 3; exec chpasswd -e";
/// The exit status both scripts use for "no such account".
const NO_SUCH_ACCOUNT: u32 = 3;

impl Session {
    /// The account's shadow password field (a crypt hash, or `!…`/`*`/empty), or `None` when
    /// the account has no shadow entry. The hash can be cracked offline: keep it out of logs.
    pub async fn password_hash(&self, account: &str) -> Result<Option<Secret<String>>> {
        validate_account_name(account)?;
        let doing = format!("reading the shadow entry of {account}");
        let out = self.run_as_root(SHADOW_SCRIPT, &[account], None).await?;
        if out.code == Some(NO_SUCH_ACCOUNT) {
            return Ok(None);
        }
        if !out.success() {
            return Err(self.command_failed(&doing, &out, &[]));
        }
        let stdout = Secret::new(String::from_utf8_lossy(&out.stdout).into_owned());
        match shadow_field(stdout.expose(), account) {
            Some(field) => Ok(Some(Secret::new(field.to_owned()))),
            None => Err(HostSshError::Output {
                target: self.target().label(),
                doing: "reading a shadow entry",
                reason: "getent printed no line for the account".to_owned(),
            }),
        }
    }

    /// Whether `password` is the account's current password: reads the shadow hash and
    /// verifies it here, so the password never leaves this process.
    /// [`HostSshError::AccountNotFound`] when the account has no shadow entry.
    pub async fn verify_account_password(
        &self,
        account: &str,
        password: &Secret<String>,
    ) -> Result<bool> {
        let hash =
            self.password_hash(account)
                .await?
                .ok_or_else(|| HostSshError::AccountNotFound {
                    target: self.target().label(),
                    account: account.to_owned(),
                })?;
        verify_password(hash.expose(), password)
    }

    /// Sets the account's password: hashes it here ([`hash_password`], `$6$`, random salt) and
    /// runs `chpasswd -e` (through `sudo -n` unless root) with `account:hash` on its standard
    /// input. Neither the password nor the hash is ever on a command line; the password never
    /// leaves this process. [`HostSshError::AccountNotFound`] when the account does not exist.
    pub async fn set_password(&self, account: &str, password: &Secret<String>) -> Result<()> {
        validate_account_name(account)?;
        let hash = hash_password(password)?;
        let line = Secret::new(format!("{account}:{}\n", hash.expose()));
        let out = self
            .run_as_root(CHPASSWD_SCRIPT, &[account], Some(line.expose().as_bytes()))
            .await?;
        if out.code == Some(NO_SUCH_ACCOUNT) {
            return Err(HostSshError::AccountNotFound {
                target: self.target().label(),
                account: account.to_owned(),
            });
        }
        if !out.success() {
            let redact = [hash.expose().as_str(), password.expose().as_str()];
            let doing = format!("setting the password of {account}");
            return Err(self.command_failed(&doing, &out, &redact));
        }
        tracing::info!(target = %self.target().label(), account, "password set");
        Ok(())
    }
}

/// [`Session::password_hash`] in a connection of its own.
pub async fn password_hash(
    target: &HostTarget,
    key: &ManagedKey,
    account: &str,
) -> Result<Option<Secret<String>>> {
    validate_account_name(account)?;
    let session = Session::connect(target, key).await?;
    let result = session.password_hash(account).await;
    session.close().await;
    result
}

/// [`Session::verify_account_password`] in a connection of its own.
pub async fn verify_account_password(
    target: &HostTarget,
    key: &ManagedKey,
    account: &str,
    password: &Secret<String>,
) -> Result<bool> {
    validate_account_name(account)?;
    let session = Session::connect(target, key).await?;
    let result = session.verify_account_password(account, password).await;
    session.close().await;
    result
}

/// [`Session::set_password`] in a connection of its own.
pub async fn set_password(
    target: &HostTarget,
    key: &ManagedKey,
    account: &str,
    password: &Secret<String>,
) -> Result<()> {
    validate_account_name(account)?;
    let session = Session::connect(target, key).await?;
    let result = session.set_password(account, password).await;
    session.close().await;
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::process::Command;

    use super::*;

    fn pw(s: &str) -> Secret<String> {
        Secret::new(s.to_owned())
    }

    /// Ulrich Drepper's reference vectors for SHA-crypt ("Unix crypt using SHA-256 and
    /// SHA-512", 2008).
    #[test]
    fn verifies_the_sha_crypt_reference_vectors() {
        let cases = [
            (
                "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
                "Hello world!",
            ),
            (
                "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
                "Hello world!",
            ),
            (
                "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
                "Hello world!",
            ),
            (
                "$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5",
                "This is just a test",
            ),
        ];
        for (hash, password) in cases {
            assert!(verify_password(hash, &pw(password)).unwrap(), "{hash}");
            assert!(
                !verify_password(hash, &pw("Hello world?")).unwrap(),
                "{hash}"
            );
        }
    }

    /// yescrypt's own reference output (openwall/yescrypt TESTS-OK), checked by the crate.
    #[test]
    fn verifies_yescrypt() {
        let hash = "$y$jD5.7$LdJMENpBABJJ3hIHjB1Bi.$HboGM6qPrsK.StKYGt6KErmUYtioHreJd98oIugoNB6";
        assert!(verify_password(hash, &pw("pleaseletmein")).unwrap());
        assert!(!verify_password(hash, &pw("pleaseletmeout")).unwrap());
    }

    #[test]
    fn agrees_with_openssl() {
        let out = Command::new("openssl")
            .args(["passwd", "-6", "-salt", "Wt3Zr8sPq1x0AbCd", "correct horse"])
            .output()
            .expect("openssl (Debian: openssl) must be installed");
        assert!(out.status.success(), "{out:?}");
        let hash = String::from_utf8(out.stdout).unwrap();
        assert!(
            verify_password(hash.trim(), &pw("correct horse")).unwrap(),
            "{hash}"
        );
        assert!(!verify_password(hash.trim(), &pw("correct horse ")).unwrap());
    }

    #[test]
    fn new_hashes_are_salted_sha512_crypt_that_verify() {
        let a = hash_password(&pw("s3cret")).unwrap();
        let b = hash_password(&pw("s3cret")).unwrap();
        assert_ne!(a.expose(), b.expose(), "salts must differ");
        let fields: Vec<&str> = a.expose().split('$').collect();
        assert_eq!(fields[..3], ["", "6", "rounds=100000"], "{fields:?}");
        assert_eq!(fields[3].len(), 16);
        assert!(verify_password(a.expose(), &pw("s3cret")).unwrap());
        assert!(!verify_password(a.expose(), &pw("s3cret!")).unwrap());
    }

    #[test]
    fn locked_disabled_and_empty_fields_match_nothing() {
        for field in [
            "",
            "*",
            "!",
            "!!",
            "!$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
        ] {
            assert!(
                !verify_password(field, &pw("Hello world!")).unwrap(),
                "{field}"
            );
        }
    }

    #[test]
    fn other_schemes_and_malformed_hashes_are_errors_without_the_hash() {
        let cases = [
            (
                "$1$abcdefgh$0123456789abcdefghijkl",
                "host_unsupported_hash",
                "$1$",
            ),
            (
                "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
                "host_unsupported_hash",
                "$2b$",
            ),
            ("abJnggxhB/yWI", "host_unsupported_hash", "DES"),
            ("$6$salt$abc$extraQzv", "host_malformed_hash", ""),
            (
                "$6$rounds=999999999$salt$xQzv",
                "host_malformed_hash",
                "rounds",
            ),
            ("$y$jGT$salt$hQzvW", "host_malformed_hash", "2048 MiB"),
        ];
        for (hash, code, scheme) in cases {
            let e = verify_password(hash, &pw("x")).unwrap_err();
            assert_eq!(e.code(), code, "{hash}: {e}");
            let text = format!("{e} {e:?}");
            assert!(text.contains(scheme), "{text}");
            let tail = hash.rsplit('$').next().unwrap();
            assert!(!text.contains(tail), "{text}");
        }
    }

    #[test]
    fn account_names() {
        for ok in [
            "root",
            "alice",
            "wt-0a1b",
            "_apt",
            "svc.backup",
            "WS01$",
            "a",
        ] {
            validate_account_name(ok).unwrap();
        }
        for bad in [
            "",
            "-rf",
            "1abc",
            "a b",
            "a;reboot",
            "a'b",
            "a\nb",
            "a/b",
            "$",
            "abcdefghijklmnopqrstuvwxyz0123456",
            "é",
        ] {
            let e = validate_account_name(bad).unwrap_err();
            assert_eq!(e.code(), "host_invalid_account", "{bad:?}");
        }
    }
}
