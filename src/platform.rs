//! The hosting platform's conventions: HTTP on port 8080, extra TCP ports assigned by the
//! platform and published in `environment.json`, and the addresses of other services.
//!
//! The platform writes a flat JSON object whose values are all strings, for example
//! `{"PORT_WWW": "42800", "DOTCLOUD_DB_MYSQL_HOST": "7a96f954.example.com", ...}`.
//! `PORT_<NAME>` is a port this service must bind; `DOTCLOUD_<SERVICE>_<NAME>_{HOST,PORT,URL}`
//! is how others reach a service, so an app never assumes a service is on localhost. The same
//! keys set as process environment variables take precedence over the file.
//!
//! This module reads files and the process environment; it is not part of the sans-I/O core.
//! Nothing here panics on a malformed file: every problem is a [`PlatformError`] naming the
//! file, the key and what is wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The port the example app and [`Environment::http_port`] fall back to.
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// The environment variable that names the `environment.json` to read.
pub const ENVIRONMENT_FILE_VAR: &str = "BERTH_ENVIRONMENT_FILE";

/// Where `environment.json` is looked for when [`ENVIRONMENT_FILE_VAR`] is not set, in order.
pub const DEFAULT_ENVIRONMENT_FILES: [&str; 2] =
    ["/home/dotcloud/environment.json", "./environment.json"];

/// The platform's variables: `environment.json` merged with the process environment.
///
/// ```
/// use berth::platform::Environment;
/// let json = r#"{"PORT_WWW": "42800", "PORT_CONTROL": "42801",
///               "DOTCLOUD_DB_MYSQL_HOST": "db.example.com", "DOTCLOUD_DB_MYSQL_PORT": "7780"}"#;
/// let env = Environment::from_json(json, "environment.json")?;
/// assert_eq!(env.http_port()?, 42800);
/// assert_eq!(env.port("control")?, Some(42801));
/// let mysql = env.service("db", "mysql")?.expect("published");
/// assert_eq!((mysql.host.as_str(), mysql.port), ("db.example.com", 7780));
/// # Ok::<(), berth::platform::PlatformError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    /// Where a variable came from, for error messages: the file, or the process environment.
    sources: BTreeMap<String, Source>,
    file: Option<PathBuf>,
}

/// Where a variable came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    File(PathBuf),
    Process,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Process => f.write_str("the process environment"),
        }
    }
}

/// A service other processes publish: where to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `DOTCLOUD_<SERVICE>_<NAME>_HOST`.
    pub host: String,
    /// `DOTCLOUD_<SERVICE>_<NAME>_PORT`.
    pub port: u16,
    /// `DOTCLOUD_<SERVICE>_<NAME>_URL`, when published.
    pub url: Option<String>,
}

/// A malformed `environment.json` or variable. Each variant names where the problem is.
#[derive(Debug)]
#[non_exhaustive]
pub enum PlatformError {
    /// The file exists but could not be read. Fix its permissions or the path in
    /// [`ENVIRONMENT_FILE_VAR`].
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The file is not a JSON object whose values are all strings.
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line and column, or the key whose value is not a string.
        problem: String,
    },
    /// A port variable is not a port number in 1..=65535.
    BadPort {
        /// Where the variable came from: a file, or the process environment.
        source: String,
        /// The variable, such as `PORT_WWW`.
        key: String,
        /// Its value.
        value: String,
    },
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlatformError::Read { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            PlatformError::Json { path, problem } => write!(f, "{}: {problem}", path.display()),
            PlatformError::BadPort { source, key, value } => {
                write!(
                    f,
                    "{source}: {key} is {value:?}, not a port number (1-65535)"
                )
            }
        }
    }
}

impl std::error::Error for PlatformError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PlatformError::Read { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl Environment {
    /// Load the platform's variables the way an app does at start: the file named by
    /// [`ENVIRONMENT_FILE_VAR`], or else the first of [`DEFAULT_ENVIRONMENT_FILES`] that exists
    /// (none is normal: an app run by hand has none), then the process environment on top.
    ///
    /// # Errors
    ///
    /// A [`PlatformError`] for a file that exists but cannot be read or is malformed.
    pub fn load() -> Result<Self, PlatformError> {
        let named = std::env::var_os(ENVIRONMENT_FILE_VAR).map(PathBuf::from);
        let candidates: Vec<PathBuf> = match named {
            Some(path) => vec![path],
            None => DEFAULT_ENVIRONMENT_FILES
                .iter()
                .map(PathBuf::from)
                .collect(),
        };
        let env = Self::load_first(&candidates)?;
        Ok(env.with_process_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        ))
    }

    /// Read the first of `candidates` that exists; an empty environment if none does.
    ///
    /// # Errors
    ///
    /// As [`Environment::load`].
    pub fn load_first(candidates: &[PathBuf]) -> Result<Self, PlatformError> {
        for path in candidates {
            match std::fs::read_to_string(path) {
                Ok(text) => return Self::from_json(&text, path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => {
                    return Err(PlatformError::Read {
                        path: path.clone(),
                        error,
                    })
                }
            }
        }
        Ok(Environment::default())
    }

    /// Parse the text of an `environment.json`; `path` is named in errors.
    ///
    /// # Errors
    ///
    /// [`PlatformError::Json`] if the text is not a JSON object of strings.
    pub fn from_json(text: &str, path: impl AsRef<Path>) -> Result<Self, PlatformError> {
        let path = path.as_ref().to_path_buf();
        let json_error = |problem: String| PlatformError::Json {
            path: path.clone(),
            problem,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| json_error(e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(json_error("not a JSON object".into()));
        };
        let mut env = Environment {
            file: Some(path.clone()),
            ..Environment::default()
        };
        for (key, value) in map {
            let serde_json::Value::String(value) = value else {
                return Err(json_error(format!("the value of {key} is not a string")));
            };
            env.sources.insert(key.clone(), Source::File(path.clone()));
            env.vars.insert(key, value);
        }
        Ok(env)
    }

    /// Overlay `vars` (normally the process environment), which take precedence over the file.
    /// Only the keys the platform defines are taken: `PORT`, `PORT_*` and `DOTCLOUD_*`.
    pub fn with_process_vars(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        for (key, value) in vars {
            if key == "PORT" || key.starts_with("PORT_") || key.starts_with("DOTCLOUD_") {
                self.sources.insert(key.clone(), Source::Process);
                self.vars.insert(key, value);
            }
        }
        self
    }

    /// The file the variables were read from, if one was.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// A variable's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// The port this service must bind for `name` (`PORT_<NAME>`, the name upper-cased).
    ///
    /// # Errors
    ///
    /// [`PlatformError::BadPort`] if the variable is set but not a port number.
    pub fn port(&self, name: &str) -> Result<Option<u16>, PlatformError> {
        self.parse_port(&format!("PORT_{}", name.to_ascii_uppercase()))
    }

    /// Every `PORT_<NAME>` as `(name, port)`, names lower-cased, in name order.
    ///
    /// # Errors
    ///
    /// [`PlatformError::BadPort`] for the first that is not a port number.
    pub fn ports(&self) -> Result<Vec<(String, u16)>, PlatformError> {
        let mut ports = Vec::new();
        for key in self.vars.keys() {
            if let Some(name) = key.strip_prefix("PORT_") {
                if let Some(port) = self.parse_port(key)? {
                    ports.push((name.to_ascii_lowercase(), port));
                }
            }
        }
        Ok(ports)
    }

    /// The HTTP port: `PORT`, else `PORT_WWW`, else [`DEFAULT_HTTP_PORT`].
    ///
    /// # Errors
    ///
    /// [`PlatformError::BadPort`] if the variable that decides is not a port number.
    pub fn http_port(&self) -> Result<u16, PlatformError> {
        Ok(match self.parse_port("PORT")? {
            Some(port) => port,
            None => self.port("www")?.unwrap_or(DEFAULT_HTTP_PORT),
        })
    }

    /// How to reach `name` of `service` (`DOTCLOUD_<SERVICE>_<NAME>_{HOST,PORT,URL}`), if the
    /// platform published both its host and its port.
    ///
    /// # Errors
    ///
    /// [`PlatformError::BadPort`] if the port is not a port number.
    pub fn service(&self, service: &str, name: &str) -> Result<Option<Service>, PlatformError> {
        let prefix = format!(
            "DOTCLOUD_{}_{}_",
            service.to_ascii_uppercase(),
            name.to_ascii_uppercase()
        );
        let host = self.get(&format!("{prefix}HOST"));
        let port = self.parse_port(&format!("{prefix}PORT"))?;
        Ok(match (host, port) {
            (Some(host), Some(port)) => Some(Service {
                host: host.to_string(),
                port,
                url: self.get(&format!("{prefix}URL")).map(str::to_string),
            }),
            _ => None,
        })
    }

    fn parse_port(&self, key: &str) -> Result<Option<u16>, PlatformError> {
        let Some(value) = self.vars.get(key) else {
            return Ok(None);
        };
        match value.trim().parse::<u16>() {
            Ok(port) if port > 0 => Ok(Some(port)),
            _ => Err(PlatformError::BadPort {
                source: self
                    .sources
                    .get(key)
                    .map_or_else(|| "environment".into(), ToString::to_string),
                key: key.to_string(),
                value: value.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the platform's documentation.
    const SAMPLE: &str = r#"{"DOTCLOUD_PROJECT": "demoapp", "DOTCLOUD_SERVICE_NAME": "www",
        "DOTCLOUD_SERVICE_ID": "0", "PORT_WWW": "42800", "PORT_CONTROL": "42801",
        "DOTCLOUD_WWW_CONTROL_HOST": "7a96f954.example.com", "DOTCLOUD_WWW_CONTROL_PORT": "17455",
        "DOTCLOUD_DB_MYSQL_HOST": "7a96f954.example.com", "DOTCLOUD_DB_MYSQL_PORT": "7780"}"#;

    #[test]
    fn reads_ports_and_services_from_the_sample() {
        let env = Environment::from_json(SAMPLE, "environment.json").unwrap();
        assert_eq!(env.http_port().unwrap(), 42800);
        assert_eq!(env.port("CONTROL").unwrap(), Some(42801));
        assert_eq!(env.port("missing").unwrap(), None);
        assert_eq!(
            env.ports().unwrap(),
            [("control".to_string(), 42801), ("www".to_string(), 42800)]
        );
        let control = env.service("www", "control").unwrap().unwrap();
        assert_eq!(control.host, "7a96f954.example.com");
        assert_eq!(control.port, 17455);
        assert_eq!(control.url, None);
        assert_eq!(env.service("db", "postgres").unwrap(), None);
        assert_eq!(env.get("DOTCLOUD_PROJECT"), Some("demoapp"));
    }

    #[test]
    fn process_variables_take_precedence_and_only_platform_keys_are_taken() {
        let env = Environment::from_json(SAMPLE, "environment.json")
            .unwrap()
            .with_process_vars([
                ("PORT".to_string(), "9000".to_string()),
                ("PORT_CONTROL".to_string(), "9001".to_string()),
                ("HOME".to_string(), "/root".to_string()),
            ]);
        assert_eq!(env.http_port().unwrap(), 9000);
        assert_eq!(env.port("control").unwrap(), Some(9001));
        assert_eq!(env.get("HOME"), None);
    }

    #[test]
    fn no_file_means_the_default_port() {
        let env =
            Environment::load_first(&[PathBuf::from("/nonexistent/environment.json")]).unwrap();
        assert_eq!(env.http_port().unwrap(), DEFAULT_HTTP_PORT);
        assert_eq!(env.file(), None);
        assert!(env.ports().unwrap().is_empty());
    }

    #[test]
    fn the_first_existing_candidate_is_read() {
        let dir = std::env::temp_dir().join(format!("berth-platform-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("environment.json");
        std::fs::write(&path, r#"{"PORT_WWW": "4000"}"#).unwrap();
        let env = Environment::load_first(&[dir.join("absent.json"), path.clone()]).unwrap();
        assert_eq!(env.http_port().unwrap(), 4000);
        assert_eq!(env.file(), Some(path.as_path()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_files_name_the_file_the_key_and_the_problem() {
        let err = Environment::from_json("{not json", "/srv/environment.json").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("/srv/environment.json: "), "{text}");
        assert!(text.contains("line 1"), "{text}");

        let err = Environment::from_json("[1, 2]", "env.json").unwrap_err();
        assert_eq!(err.to_string(), "env.json: not a JSON object");

        let err = Environment::from_json(r#"{"PORT_WWW": 42800}"#, "env.json").unwrap_err();
        assert_eq!(
            err.to_string(),
            "env.json: the value of PORT_WWW is not a string"
        );

        let env = Environment::from_json(r#"{"PORT_WWW": "http"}"#, "env.json").unwrap();
        let err = env.http_port().unwrap_err();
        assert_eq!(
            err.to_string(),
            "env.json: PORT_WWW is \"http\", not a port number (1-65535)"
        );
        assert!(matches!(err, PlatformError::BadPort { ref key, .. } if key == "PORT_WWW"));

        let env = Environment::default().with_process_vars([("PORT".into(), "0".into())]);
        assert_eq!(
            env.http_port().unwrap_err().to_string(),
            "the process environment: PORT is \"0\", not a port number (1-65535)"
        );
        let env = Environment::default().with_process_vars([("PORT_X".into(), "70000".into())]);
        assert!(env.ports().is_err());
    }

    #[test]
    fn an_unreadable_path_is_an_error_not_a_missing_file() {
        // A directory cannot be read as a file.
        let err = Environment::load_first(&[std::env::temp_dir()]).unwrap_err();
        assert!(matches!(err, PlatformError::Read { .. }), "{err}");
        assert!(err.to_string().starts_with("cannot read "));
    }
}
