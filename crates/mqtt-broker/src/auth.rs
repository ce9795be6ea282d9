//! MQTT 5.0 enhanced authentication (section 4.12): the pluggable [`AuthMethod`] trait, and
//! SCRAM-SHA-256 ([`ScramMethod`]), the built-in method, with credentials from
//! `scram_users_file`.
//!
//! An exchange starts with the Authentication Data of CONNECT (or of an AUTH 0x19 that
//! re-authenticates a live connection) and goes on with AUTH 0x18 packets both ways until the
//! method says success or failure. The connection task (`connection.rs`) carries the packets;
//! the methods here only turn data into data.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use mqtt_codec::ReasonCode;
use mqtt_session::scram::{self, Credentials, ScramServer};
use ring::rand::{SecureRandom, SystemRandom};

/// One enhanced authentication method.
pub trait AuthMethod: Send + Sync + std::fmt::Debug {
    /// Its name, as clients give it in the Authentication Method property.
    fn name(&self) -> &str;

    /// Starts an exchange with the client's first Authentication Data.
    fn start(&self, data: &[u8]) -> AuthStep;
}

/// The state of one exchange between two AUTH packets.
pub trait AuthConversation: Send + std::fmt::Debug {
    /// Takes the client's next Authentication Data.
    fn step(self: Box<Self>, data: &[u8]) -> AuthStep;
}

/// What an authentication method says after the client's data.
#[derive(Debug)]
pub enum AuthStep {
    /// Send this data in AUTH 0x18 ("continue authentication") and wait for the client's
    /// answer.
    Continue(Bytes, Box<dyn AuthConversation>),
    /// The client is authenticated as `user`; `data`, if any, goes in CONNACK (or AUTH 0x00).
    Success {
        /// The authenticated user name.
        user: String,
        /// The method's last data for the client.
        data: Option<Bytes>,
    },
    /// The client is refused with this reason (0x87 not authorized, 0x86 bad user name or
    /// password, ...).
    Failure(ReasonCode),
}

/// SCRAM-SHA-256: users' [`Credentials`] by name.
#[derive(Debug)]
pub struct ScramMethod {
    users: HashMap<String, Credentials>,
    rng: SystemRandom,
    /// A secret unknown users' made-up credentials derive from, so that a client cannot tell an
    /// unknown user from a wrong password: the same across restarts for the same credentials
    /// file (otherwise a decoy's salt would change with a restart and a real user's not).
    secret: [u8; 32],
    /// The iteration count and salt length of the decoys: the most common among the users.
    decoy_iterations: u32,
    decoy_salt_len: usize,
}

impl ScramMethod {
    /// A method with these users (decoys derived from a random secret).
    pub fn new(users: HashMap<String, Credentials>) -> Self {
        let rng = SystemRandom::new();
        let mut secret = [0u8; 32];
        // Without randomness the decoys are merely predictable: still refused.
        let _ = rng.fill(&mut secret);
        Self::with_secret(users, secret)
    }

    fn with_secret(users: HashMap<String, Credentials>, secret: [u8; 32]) -> Self {
        fn most_common(values: impl Iterator<Item = usize>, default: usize) -> usize {
            let mut counts: HashMap<usize, usize> = HashMap::new();
            for v in values {
                *counts.entry(v).or_default() += 1;
            }
            counts
                .into_iter()
                .max_by_key(|&(value, count)| (count, value))
                .map_or(default, |(value, _)| value)
        }
        let decoy_iterations = most_common(
            users.values().map(|c| c.iterations as usize),
            scram::DEFAULT_ITERATIONS as usize,
        );
        let decoy_salt_len = most_common(users.values().map(|c| c.salt.len()), 16).min(32);
        Self {
            users,
            rng: SystemRandom::new(),
            secret,
            decoy_iterations: u32::try_from(decoy_iterations).unwrap_or(scram::DEFAULT_ITERATIONS),
            decoy_salt_len,
        }
    }

    /// Reads a credentials file: one `user:SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`
    /// per line (`mqtt-broker scram-credential USER` writes one); blank lines and lines starting
    /// with `#` are ignored.
    ///
    /// # Errors
    /// The file cannot be read, or a line is malformed (the message names the line).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the text of a credentials file.
    ///
    /// # Errors
    /// A malformed line, named by its number.
    pub fn parse(text: &str) -> Result<Self, String> {
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        let mut secret = [0u8; 32];
        secret.copy_from_slice(digest.as_ref());
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, credentials) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: expected user:credentials", n + 1))?;
            let credentials =
                Credentials::from_text(credentials).map_err(|e| format!("line {}: {e}", n + 1))?;
            users.insert(user.to_owned(), credentials);
        }
        Ok(Self::with_secret(users, secret))
    }

    /// A credentials line for `user` with `password`: a random salt, the default iteration
    /// count.
    ///
    /// # Errors
    /// When the system has no randomness to offer.
    pub fn credential_line(user: &str, password: &str) -> Result<String, String> {
        let mut salt = [0u8; 16];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| "no random source".to_owned())?;
        let credentials = Credentials::derive(password, &salt, scram::DEFAULT_ITERATIONS)
            .map_err(|e| e.to_string())?;
        Ok(format!("{user}:{}", credentials.to_text()))
    }

    /// A fresh server nonce; `None` without a random source (the exchange then fails: a
    /// predictable nonce would let a recorded exchange be replayed).
    fn nonce(&self) -> Option<String> {
        use base64::Engine as _;
        let mut bytes = [0u8; 18];
        self.rng.fill(&mut bytes).ok()?;
        Some(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// Made-up credentials for an unknown user: the exchange runs its course and fails at the
    /// proof, as for a wrong password.
    fn decoy(&self, user: &str) -> Credentials {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.secret);
        let tag = ring::hmac::sign(&key, user.as_bytes());
        let mut stored_key = [0u8; 32];
        stored_key.copy_from_slice(tag.as_ref());
        Credentials {
            salt: tag
                .as_ref()
                .get(..self.decoy_salt_len)
                .unwrap_or_default()
                .to_vec(),
            iterations: self.decoy_iterations,
            stored_key,
            server_key: stored_key,
        }
    }
}

impl AuthMethod for ScramMethod {
    fn name(&self) -> &str {
        scram::METHOD
    }

    fn start(&self, data: &[u8]) -> AuthStep {
        let Ok(first) = std::str::from_utf8(data) else {
            return AuthStep::Failure(ReasonCode::NotAuthorized);
        };
        let Ok(user) = scram::client_first_user(first) else {
            return AuthStep::Failure(ReasonCode::NotAuthorized);
        };
        let credentials = match self.users.get(&user) {
            Some(c) => c.clone(),
            None => self.decoy(&user),
        };
        let Some(nonce) = self.nonce() else {
            return AuthStep::Failure(ReasonCode::UnspecifiedError);
        };
        match ScramServer::start(first, credentials, &nonce) {
            Ok((server, server_first)) => AuthStep::Continue(
                Bytes::from(server_first.into_bytes()),
                Box::new(ScramConversation { server }),
            ),
            Err(_) => AuthStep::Failure(ReasonCode::NotAuthorized),
        }
    }
}

/// A SCRAM exchange waiting for the client-final message.
#[derive(Debug)]
struct ScramConversation {
    server: ScramServer,
}

impl AuthConversation for ScramConversation {
    fn step(self: Box<Self>, data: &[u8]) -> AuthStep {
        let Ok(last) = std::str::from_utf8(data) else {
            return AuthStep::Failure(ReasonCode::NotAuthorized);
        };
        match self.server.client_final(last) {
            Ok(server_final) => AuthStep::Success {
                user: self.server.user().to_owned(),
                data: Some(Bytes::from(server_final.into_bytes())),
            },
            Err(_) => AuthStep::Failure(ReasonCode::NotAuthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_session::scram::ScramClient;

    fn method() -> ScramMethod {
        let line = ScramMethod::credential_line("alice", "wonderland").unwrap();
        ScramMethod::parse(&format!("# users\n\n{line}\n")).unwrap()
    }

    fn run(method: &ScramMethod, user: &str, password: &str) -> AuthStep {
        let (mut client, first) = ScramClient::start(user, password, "clientnonce");
        let AuthStep::Continue(server_first, conversation) = method.start(first.as_bytes()) else {
            panic!("expected a challenge");
        };
        let last = client
            .server_first(std::str::from_utf8(&server_first).unwrap())
            .unwrap();
        let step = conversation.step(last.as_bytes());
        if let AuthStep::Success { data: Some(d), .. } = &step {
            client
                .server_final(std::str::from_utf8(d).unwrap())
                .unwrap();
        }
        step
    }

    #[test]
    fn the_right_password_succeeds_and_the_server_proves_itself() {
        match run(&method(), "alice", "wonderland") {
            AuthStep::Success { user, .. } => assert_eq!(user, "alice"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_wrong_password_and_an_unknown_user_fail_alike() {
        for (user, password) in [("alice", "looking-glass"), ("bob", "wonderland")] {
            assert!(matches!(
                run(&method(), user, password),
                AuthStep::Failure(ReasonCode::NotAuthorized)
            ));
        }
    }

    #[test]
    fn an_unknown_users_challenge_is_stable_across_restarts() {
        let text = format!(
            "{}\n",
            ScramMethod::credential_line("alice", "wonderland").unwrap()
        );
        let salt_of = |method: &ScramMethod, user: &str| {
            let first = format!("n,,n={user},r=abc");
            let AuthStep::Continue(server_first, _) = method.start(first.as_bytes()) else {
                panic!("expected a challenge");
            };
            let text = String::from_utf8(server_first.to_vec()).unwrap();
            let salt = text
                .split(',')
                .find(|p| p.starts_with("s="))
                .unwrap()
                .to_owned();
            let iterations = text
                .split(',')
                .find(|p| p.starts_with("i="))
                .unwrap()
                .to_owned();
            (salt, iterations)
        };
        // Two broker starts on the same file: the decoy does not change, as a real user's
        // credentials do not, and looks like them (same iteration count, same salt length).
        let first_start = ScramMethod::parse(&text).unwrap();
        let second_start = ScramMethod::parse(&text).unwrap();
        assert_eq!(
            salt_of(&first_start, "mallory"),
            salt_of(&second_start, "mallory")
        );
        let (decoy_salt, decoy_iterations) = salt_of(&first_start, "mallory");
        let (real_salt, real_iterations) = salt_of(&first_start, "alice");
        assert_eq!(decoy_iterations, real_iterations);
        assert_eq!(decoy_salt.len(), real_salt.len());
    }

    #[test]
    fn malformed_files_name_the_line() {
        let e = ScramMethod::parse("alice:SCRAM-SHA-256$4096:AA==$AA==:AA==\nbob").unwrap_err();
        assert!(e.starts_with("line 1"), "{e}");
        let e = ScramMethod::parse("# ok\nbob").unwrap_err();
        assert!(e.starts_with("line 2"), "{e}");
    }
}
