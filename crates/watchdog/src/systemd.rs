//! systemd's D-Bus API (`org.freedesktop.systemd1`), typed, behind the [`SystemdApi`] trait.
//!
//! [`DbusSystemd`] is the real client: it connects lazily, calls `Subscribe` on every new
//! connection (systemd only sends job signals to subscribed clients), reconnects once when a
//! call fails because the connection is gone (dbus-daemon restarted, socket closed), and bounds
//! every call with a timeout. Properties are read fresh on every call (no proxy caching), so
//! nothing relies on `PropertiesChanged` signals being emitted.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Mutex;
use zbus::proxy::CacheProperties;
use zbus::{Connection, ObjectPath, OwnedObjectPath, proxy};

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("cannot connect to the D-Bus at {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: zbus::Error,
    },
    #[error("D-Bus call {call} for {unit} failed: {source}")]
    Call {
        call: &'static str,
        unit: String,
        #[source]
        source: zbus::Error,
    },
    #[error("D-Bus call {call} for {unit} got no answer within {timeout:?}")]
    Timeout {
        call: &'static str,
        unit: String,
        timeout: Duration,
    },
    #[error("job {job} for {unit} did not finish within {timeout:?}")]
    JobTimeout {
        unit: String,
        job: String,
        timeout: Duration,
    },
}

impl SystemdError {
    /// Whether the error says the bus connection is gone (rather than systemd refusing).
    fn connection_lost(&self) -> bool {
        match self {
            SystemdError::Call { source, .. } => {
                !matches!(source, zbus::Error::MethodError(..) | zbus::Error::FDO(..))
            }
            SystemdError::Timeout { .. } | SystemdError::Connect { .. } => true,
            SystemdError::JobTimeout { .. } => false,
        }
    }
}

#[proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
pub trait Manager {
    /// `a(ssssssouso)`: name, description, load, active, sub, following, path, job id, job type, job path.
    #[allow(clippy::type_complexity)]
    fn list_units_by_patterns(
        &self,
        states: &[&str],
        patterns: &[&str],
    ) -> zbus::Result<
        Vec<(
            String,
            String,
            String,
            String,
            String,
            String,
            OwnedObjectPath,
            u32,
            String,
            OwnedObjectPath,
        )>,
    >;
    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn subscribe(&self) -> zbus::Result<()>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

#[proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1/unit"
)]
pub trait Unit {
    #[zbus(property(emits_changed_signal = "false"))]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property(emits_changed_signal = "false"))]
    fn sub_state(&self) -> zbus::Result<String>;
    #[zbus(property(emits_changed_signal = "false"), name = "InvocationID")]
    fn invocation_id(&self) -> zbus::Result<Vec<u8>>;
    #[zbus(property(emits_changed_signal = "false"))]
    fn active_enter_timestamp(&self) -> zbus::Result<u64>;
}

#[proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1/unit"
)]
pub trait Service {
    #[zbus(property(emits_changed_signal = "false"), name = "NRestarts")]
    fn n_restarts(&self) -> zbus::Result<u32>;
    #[zbus(property(emits_changed_signal = "false"))]
    fn exec_main_status(&self) -> zbus::Result<i32>;
}

/// One row of `ListUnitsByPatterns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUnit {
    pub name: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
}

/// What the watchdog reads about one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitStatus {
    pub name: String,
    pub active_state: String,
    pub sub_state: String,
    /// Hex, 32 characters; empty when the unit never ran.
    pub invocation_id: String,
    /// Microseconds since the epoch; 0 when the unit never became active.
    pub active_enter_timestamp_us: u64,
    /// Service units only.
    pub n_restarts: Option<u32>,
    pub exec_main_status: Option<i32>,
}

/// The subset of systemd the watchdog uses; the supervisor and the gate are generic over it.
pub trait SystemdApi: Send + Sync + 'static {
    fn list_units(
        &self,
        patterns: &[String],
    ) -> impl Future<Output = Result<Vec<ListedUnit>, SystemdError>> + Send;
    fn unit_status(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<UnitStatus, SystemdError>> + Send;
    /// `RestartUnit(name, "replace")`, then wait for its job; returns the job result (`done`,
    /// `failed`, `timeout`, ...).
    fn restart_unit(&self, name: &str)
    -> impl Future<Output = Result<String, SystemdError>> + Send;
    /// `StartUnit(name, "replace")`, then wait for its job.
    fn start_unit(&self, name: &str) -> impl Future<Output = Result<String, SystemdError>> + Send;
}

/// The real client.
pub struct DbusSystemd {
    address: Option<String>,
    call_timeout: Duration,
    job_timeout: Duration,
    conn: Mutex<Option<Connection>>,
}

impl DbusSystemd {
    /// `address`: a D-Bus address, or `None` for the system bus (`$DBUS_SYSTEM_BUS_ADDRESS`,
    /// then `/run/dbus/system_bus_socket`). Connects on first use.
    pub fn new(address: Option<String>, call_timeout: Duration, job_timeout: Duration) -> Self {
        Self {
            address,
            call_timeout,
            job_timeout,
            conn: Mutex::new(None),
        }
    }

    fn address_label(&self) -> String {
        self.address.clone().unwrap_or_else(|| {
            std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| "the system bus".to_owned())
        })
    }

    /// Connect and subscribe now (start-up check); later calls reuse the connection.
    pub async fn connect(&self) -> Result<(), SystemdError> {
        self.connection().await.map(|_| ())
    }

    async fn connection(&self) -> Result<Connection, SystemdError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let connect = async {
            let builder = match &self.address {
                Some(addr) => zbus::connection::Builder::address(addr.as_str()),
                None => zbus::connection::Builder::system(),
            };
            let conn = builder.build().await?;
            ManagerProxy::new(&conn).await?.subscribe().await?;
            Ok::<_, zbus::Error>(conn)
        };
        let conn = match tokio::time::timeout(self.call_timeout, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(source)) => {
                return Err(SystemdError::Connect {
                    address: self.address_label(),
                    source,
                });
            }
            Err(_) => {
                return Err(SystemdError::Connect {
                    address: self.address_label(),
                    source: zbus::Error::Failure(format!(
                        "no answer within {:?}",
                        self.call_timeout
                    )),
                });
            }
        };
        log::info!(event = "dbus_connected", address = self.address_label(); "connected to systemd on {}", self.address_label());
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn forget(&self, dead: &Connection) {
        let mut slot = self.conn.lock().await;
        if slot
            .as_ref()
            .is_some_and(|c| c.unique_name() == dead.unique_name())
        {
            *slot = None;
        }
    }

    /// Run `op` on the current connection; when the connection turns out to be gone, reconnect
    /// and try once more.
    async fn call<T, F, Fut>(
        &self,
        call: &'static str,
        unit: &str,
        timeout: Duration,
        op: F,
    ) -> Result<T, SystemdError>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = Result<T, SystemdError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let conn = self.connection().await?;
            let result = match tokio::time::timeout(timeout, op(conn.clone())).await {
                Ok(result) => result,
                Err(_) => Err(SystemdError::Timeout {
                    call,
                    unit: unit.to_owned(),
                    timeout,
                }),
            };
            match result {
                Err(err) if attempt == 1 && err.connection_lost() => {
                    log::warn!(event = "dbus_lost"; "D-Bus connection lost ({err}); reconnecting");
                    self.forget(&conn).await;
                }
                other => return other,
            }
        }
    }
}

fn call_err(call: &'static str, unit: &str) -> impl Fn(zbus::Error) -> SystemdError + use<> {
    let unit = unit.to_owned();
    move |source| SystemdError::Call {
        call,
        unit: unit.clone(),
        source,
    }
}

async fn unit_path(conn: &Connection, name: &str) -> Result<OwnedObjectPath, SystemdError> {
    let manager = ManagerProxy::new(conn)
        .await
        .map_err(call_err("GetUnit", name))?;
    match manager.get_unit(name).await {
        Ok(path) => Ok(path),
        // Not loaded (NoSuchUnit): LoadUnit gives its object (load state tells why).
        Err(zbus::Error::MethodError(..)) => manager
            .load_unit(name)
            .await
            .map_err(call_err("LoadUnit", name)),
        Err(err) => Err(call_err("GetUnit", name)(err)),
    }
}

async fn read_status(conn: Connection, name: String) -> Result<UnitStatus, SystemdError> {
    let path = unit_path(&conn, &name).await?;
    let err = call_err("Get(org.freedesktop.systemd1.Unit)", &name);
    let unit = UnitProxy::builder(&conn)
        .path(path.clone())
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(&err)?;
    let active_state = unit.active_state().await.map_err(&err)?;
    let sub_state = unit.sub_state().await.map_err(&err)?;
    let invocation_id = unit
        .invocation_id()
        .await
        .map_err(&err)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let active_enter_timestamp_us = unit.active_enter_timestamp().await.map_err(&err)?;
    let (mut n_restarts, mut exec_main_status) = (None, None);
    if name.ends_with(".service") {
        let err = call_err("Get(org.freedesktop.systemd1.Service)", &name);
        let service = ServiceProxy::builder(&conn)
            .path(path)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(&err)?;
        n_restarts = Some(service.n_restarts().await.map_err(&err)?);
        exec_main_status = Some(service.exec_main_status().await.map_err(&err)?);
    }
    Ok(UnitStatus {
        name,
        active_state,
        sub_state,
        invocation_id,
        active_enter_timestamp_us,
        n_restarts,
        exec_main_status,
    })
}

/// Issue a job and wait for its `JobRemoved`; the signal stream is set up before the call so a
/// job that finishes at once is not missed.
async fn run_job(
    conn: Connection,
    name: String,
    restart: bool,
    wait: Duration,
) -> Result<String, SystemdError> {
    let call = if restart { "RestartUnit" } else { "StartUnit" };
    let err = call_err(call, &name);
    let manager = ManagerProxy::new(&conn).await.map_err(&err)?;
    let mut removed = manager.receive_job_removed().await.map_err(&err)?;
    let job = if restart {
        manager.restart_unit(&name, "replace").await
    } else {
        manager.start_unit(&name, "replace").await
    }
    .map_err(&err)?;
    let finished = async {
        while let Some(signal) = removed.next().await {
            let args = signal.args().map_err(&err)?;
            if args.job.as_str() == job.as_str() {
                return Ok(args.result.to_owned());
            }
        }
        Err(err(zbus::Error::Failure(
            "the bus closed before the job finished".into(),
        )))
    };
    match tokio::time::timeout(wait, finished).await {
        Ok(result) => result,
        Err(_) => Err(SystemdError::JobTimeout {
            unit: name.clone(),
            job: job.to_string(),
            timeout: wait,
        }),
    }
}

impl SystemdApi for DbusSystemd {
    async fn list_units(&self, patterns: &[String]) -> Result<Vec<ListedUnit>, SystemdError> {
        let label = patterns.join(",");
        self.call("ListUnitsByPatterns", &label, self.call_timeout, |conn| {
            let patterns = patterns.to_vec();
            let label = label.clone();
            async move {
                let err = call_err("ListUnitsByPatterns", &label);
                let manager = ManagerProxy::new(&conn).await.map_err(&err)?;
                let pats: Vec<&str> = patterns.iter().map(String::as_str).collect();
                let rows = manager
                    .list_units_by_patterns(&[], &pats)
                    .await
                    .map_err(&err)?;
                Ok(rows
                    .into_iter()
                    .map(|r| ListedUnit {
                        name: r.0,
                        load_state: r.2,
                        active_state: r.3,
                        sub_state: r.4,
                    })
                    .collect())
            }
        })
        .await
    }

    async fn unit_status(&self, name: &str) -> Result<UnitStatus, SystemdError> {
        self.call("Get", name, self.call_timeout, |conn| {
            read_status(conn, name.to_owned())
        })
        .await
    }

    async fn restart_unit(&self, name: &str) -> Result<String, SystemdError> {
        let wait = self.job_timeout;
        self.call("RestartUnit", name, wait + self.call_timeout, |conn| {
            run_job(conn, name.to_owned(), true, wait)
        })
        .await
    }

    async fn start_unit(&self, name: &str) -> Result<String, SystemdError> {
        let wait = self.job_timeout;
        self.call("StartUnit", name, wait + self.call_timeout, |conn| {
            run_job(conn, name.to_owned(), false, wait)
        })
        .await
    }
}
