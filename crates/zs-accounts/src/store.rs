//! [`Accounts`]: users and their password hashes, kept in a ZDB database.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use zs::User;
use zs_db::{Database, Record, Store};

use crate::AccountError;
use crate::offline::Offline;
use crate::password::{hash_password, verify_password};

/// The ZDB database accounts are kept in.
pub const DATABASE: &str = "__accounts";
/// Longest user name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Longest password, in bytes (checked before anything is hashed).
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// One account as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Account {
    name: String,
    /// Argon2id PHC string.
    phc: String,
    roles: Vec<String>,
    disabled: bool,
    /// Seconds since the Unix epoch.
    created: u64,
}

/// An account as listed (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// The user name.
    pub name: String,
    /// Roles, such as `admin`.
    pub roles: Vec<String>,
    /// Whether logins are refused.
    pub disabled: bool,
    /// When it was made, in seconds since the Unix epoch.
    pub created: u64,
}

/// The accounts of a server (ZServer4D: the dual-tunnel server's user database, `UserDB`),
/// stored in ZDB database [`DATABASE`] with an index on the name. Hashing and checking
/// passwords is slow on purpose (Argon2id): call these methods off the async runtime (the
/// service runs them on the blocking pool). Clones share the accounts.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<Store>,
    db: Arc<Database>,
    /// Serializes changes, so two registrations of one name cannot both pass the check.
    writes: Arc<Mutex<()>>,
    /// A hash checked when the name is unknown, so that takes as long as a wrong password.
    decoy: Arc<str>,
    offline: Offline,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("database", &self.db.name())
            .finish_non_exhaustive()
    }
}

/// Checks a user name: 1 to [`MAX_NAME_LEN`] bytes of ASCII letters, digits, `_`, `-`, `.`,
/// `@`, not starting with `.`.
pub fn check_name(name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadName(format!(
            "1 to {MAX_NAME_LEN} of A-Z a-z 0-9 _ - . @, not starting with '.'"
        )))
    }
}

/// Checks a new password's length.
pub fn check_password(password: &str) -> Result<(), AccountError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(AccountError::BadPassword(format!(
            "longer than {MAX_PASSWORD_LEN} bytes"
        )));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::BadPassword(format!(
            "shorter than {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl Accounts {
    /// The accounts in `store` (database [`DATABASE`], made on first use). The store may
    /// hold the application's databases too.
    pub fn open(store: Arc<Store>) -> Result<Self, AccountError> {
        let db = store.open_or_create(DATABASE)?;
        db.create_index("name")?;
        let decoy = hash_password("not a password of anyone's")?;
        let offline = Offline::open(&store)?;
        Ok(Self {
            store,
            db,
            writes: Arc::new(Mutex::new(())),
            decoy: decoy.into(),
            offline,
        })
    }

    /// The offline message queue kept beside the accounts.
    pub fn offline(&self) -> &Offline {
        &self.offline
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn find(&self, name: &str) -> Result<Option<(u64, Account)>, AccountError> {
        let ids = self
            .db
            .lookup("name", &zs_db::zs_expr::Value::Str(name.into()))?
            .unwrap_or_default();
        for id in ids {
            if let Some(Record::Json(json)) = self.db.get(id)? {
                let account: Account = serde_json::from_value(json)
                    .map_err(|error| AccountError::Storage(format!("account {id}: {error}")))?;
                if account.name == name {
                    return Ok(Some((id, account)));
                }
            }
        }
        Ok(None)
    }

    fn store(&self, id: Option<u64>, account: &Account) -> Result<(), AccountError> {
        let json = serde_json::to_value(account)
            .map_err(|error| AccountError::Storage(error.to_string()))?;
        match id {
            Some(id) => self.db.modify(id, Record::Json(json))?,
            None => {
                self.db.insert(Record::Json(json))?;
            }
        }
        Ok(())
    }

    /// Adds user `name` with `password` and `roles`.
    pub fn add(&self, name: &str, password: &str, roles: &[String]) -> Result<(), AccountError> {
        check_name(name)?;
        check_password(password)?;
        let phc = hash_password(password)?;
        let _guard = self.lock();
        if self.find(name)?.is_some() {
            return Err(AccountError::Exists(name.to_owned()));
        }
        self.store(
            None,
            &Account {
                name: name.to_owned(),
                phc,
                roles: roles.to_vec(),
                disabled: false,
                created: now(),
            },
        )
    }

    /// Checks `name` and `password`: the user, or [`AccountError::WrongLogin`] whether the
    /// name is unknown or the password wrong (both take one Argon2id check), or
    /// [`AccountError::Disabled`] (only said to someone who gave the right password).
    pub fn verify(&self, name: &str, password: &str) -> Result<User, AccountError> {
        if password.len() > MAX_PASSWORD_LEN || check_name(name).is_err() {
            // Still one check, so a malformed name is not answered faster.
            let _ = verify_password(password.get(..64).unwrap_or(password), &self.decoy);
            return Err(AccountError::WrongLogin);
        }
        let Some((_, account)) = self.find(name)? else {
            let _ = verify_password(password, &self.decoy);
            return Err(AccountError::WrongLogin);
        };
        if !verify_password(password, &account.phc)? {
            return Err(AccountError::WrongLogin);
        }
        if account.disabled {
            return Err(AccountError::Disabled(name.to_owned()));
        }
        Ok(User::new(account.name, account.roles))
    }

    /// Whether user `name` exists.
    pub fn exists(&self, name: &str) -> Result<bool, AccountError> {
        Ok(self.find(name)?.is_some())
    }

    /// Sets `name`'s password.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), AccountError> {
        check_password(password)?;
        let phc = hash_password(password)?;
        let _guard = self.lock();
        let (id, mut account) = self
            .find(name)?
            .ok_or_else(|| AccountError::NoSuchUser(name.to_owned()))?;
        account.phc = phc;
        self.store(Some(id), &account)
    }

    /// Refuses (or again allows) `name`'s logins.
    pub fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), AccountError> {
        let _guard = self.lock();
        let (id, mut account) = self
            .find(name)?
            .ok_or_else(|| AccountError::NoSuchUser(name.to_owned()))?;
        account.disabled = disabled;
        self.store(Some(id), &account)
    }

    /// Removes user `name`; whether it existed.
    pub fn remove(&self, name: &str) -> Result<bool, AccountError> {
        let _guard = self.lock();
        match self.find(name)? {
            Some((id, _)) => Ok(self.db.delete(id)?),
            None => Ok(false),
        }
    }

    /// Every account, by name.
    pub fn list(&self) -> Result<Vec<AccountInfo>, AccountError> {
        let mut accounts = Vec::new();
        let (records, _) = self
            .store
            .query(DATABASE, zs_db::Query::all())?
            .collect_all()?;
        for (id, record) in records {
            let Record::Json(json) = record else {
                continue;
            };
            let account: Account = serde_json::from_value(json)
                .map_err(|error| AccountError::Storage(format!("account {id}: {error}")))?;
            accounts.push(AccountInfo {
                name: account.name,
                roles: account.roles,
                disabled: account.disabled,
                created: account.created,
            });
        }
        accounts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(accounts)
    }
}
