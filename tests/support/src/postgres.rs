//! PostgreSQL under FerretDB's `postgresql` handler: one private cluster per test process
//! (a copy of a data dir `initdb` made once, in `/dev/shm` or the temp dir; TCP on a free
//! loopback port, its unix socket in its dir, fsync off), started on first use and shared by every test of the process — each test gets
//! its own MongoDB database, which FerretDB keeps as a schema. Stopped, and its directory
//! removed, when the process exits; killed by the kernel if the process dies first (its
//! directory is then removed by the next test process).
//!
//! PostgreSQL refuses to run as root: as root, the cluster runs as the `postgres` user that
//! Debian's package creates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::{Proc, free_port, require, run};

/// The cluster's superuser (trust authentication: only this machine can reach it).
const USER: &str = "pushcluster";
/// Prefix of the cluster's temp dir, followed by the owning process's pid.
const DIR_PREFIX: &str = "pushcluster-postgres-";

/// A running PostgreSQL cluster.
pub struct Postgres {
    pub port: u16,
    /// Directory of the unix socket (`.s.PGSQL.{port}`).
    pub socket_dir: PathBuf,
    pid: u32,
    proc: Mutex<Option<Proc>>,
    dir: PathBuf,
}

static SHARED: Mutex<Option<&'static Postgres>> = Mutex::new(None);

impl Postgres {
    /// This process's cluster, started on the first call; `None` to skip (not installed and
    /// not required, see [`crate::require`]).
    pub fn shared() -> Option<anyhow::Result<&'static Postgres>> {
        // The real paths: as root the cluster runs as another user, who may not be allowed
        // to follow links into our tools dir.
        let real = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
        let initdb = real(require("initdb")?);
        let postgres = real(require("postgres")?);
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pg) = *shared {
            return Some(Ok(pg));
        }
        // A port taken in between only costs another attempt.
        let mut started = Postgres::start(&initdb, &postgres);
        for _ in 0..2 {
            if started.is_ok() {
                break;
            }
            started = Postgres::start(&initdb, &postgres);
        }
        Some(started.map(|pg| {
            let pg: &'static Postgres = Box::leak(Box::new(pg));
            *shared = Some(pg);
            // SAFETY: registers a plain `extern "C"` function, run once at exit.
            unsafe { libc::atexit(stop_shared) };
            pg
        }))
    }

    /// A libpq URL of `database` through the unix socket.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{USER}@/{database}?host={}&port={}",
            self.socket_dir.display(),
            self.port
        )
    }

    /// The postmaster's pid (its backends are in its process group).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn start(initdb: &Path, postgres: &Path) -> anyhow::Result<Postgres> {
        remove_stale_dirs();
        let owner = owner()?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir_in(base_dir())?
            .keep();
        let result = Postgres::start_in(&dir, owner, initdb, postgres);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    fn start_in(
        dir: &Path,
        owner: Option<(u32, u32)>,
        initdb: &Path,
        postgres: &Path,
    ) -> anyhow::Result<Postgres> {
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
        }
        let data = dir.join("data");
        let template = template(initdb, owner)?;
        run(Command::new("cp").arg("-a").arg(&template).arg(&data))
            .context("copying the initdb template")?;
        let port = free_port();
        let mut cmd = Command::new(postgres);
        cmd.arg("-D")
            .arg(&data)
            .arg(format!("-p{port}"))
            .arg("-k")
            .arg(dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            // Tests need no durability: a crashed cluster is thrown away.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            // Dynamic shared memory in the data dir (removed with it), not in /dev/shm.
            .args(["-c", "dynamic_shared_memory_type=mmap"])
            .current_dir(dir);
        if let Some((uid, gid)) = owner {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        let mut proc = Proc::spawn("postgres", cmd, &dir.join("postgres.log"))?;
        wait_ready(&mut proc, &data)?;
        Ok(Postgres {
            port,
            socket_dir: dir.to_owned(),
            pid: proc.pid(),
            proc: Mutex::new(Some(proc)),
            dir: dir.to_owned(),
        })
    }
}

/// A data directory made by `initdb` once per machine, PostgreSQL version and owner, then
/// copied for every cluster: `initdb` takes seconds on a busy machine, a copy a fraction of
/// one. It lives beside the clusters (not in our tools dir: the owner may be `postgres`, who
/// cannot reach it).
fn template(initdb: &Path, owner: Option<(u32, u32)>) -> anyhow::Result<PathBuf> {
    let version = run(Command::new(initdb).arg("--version"))?;
    let version = version.split_whitespace().nth(2).unwrap_or("unknown");
    let uid = match owner {
        Some((uid, _)) => uid,
        // SAFETY: geteuid has no preconditions.
        None => unsafe { libc::geteuid() },
    };
    let template = base_dir().join(format!("pushcluster-pgtemplate-{version}-{uid}"));
    if template.join("PG_VERSION").exists() {
        return Ok(template);
    }
    // Made aside and renamed into place: concurrent test processes never see half of one.
    let partial = tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}{}-template-", std::process::id()))
        .tempdir_in(base_dir())?
        .keep();
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&partial, Some(uid), Some(gid))?;
    }
    let data = partial.join("data");
    let mut init = Command::new(initdb);
    init.arg("-D")
        .arg(&data)
        .args(["-U", USER, "--auth=trust", "--no-sync", "--no-instructions"])
        // 1 MiB WAL segments instead of 16: less to copy.
        .args(["-E", "UTF8", "--locale=C", "--wal-segsize=1"])
        .current_dir(&partial);
    if let Some((uid, gid)) = owner {
        use std::os::unix::process::CommandExt;
        init.uid(uid).gid(gid);
    }
    let made =
        run(&mut init)
            .context("initdb")
            .and_then(|_| match std::fs::rename(&data, &template) {
                Ok(()) => Ok(()),
                // Another process was faster: use its template.
                Err(_) if template.join("PG_VERSION").exists() => Ok(()),
                Err(e) => Err(e.into()),
            });
    let _ = std::fs::remove_dir_all(&partial);
    made.map(|()| template)
}

/// Waits for the postmaster to write "ready" into `postmaster.pid` (as `pg_ctl -w` does).
fn wait_ready(proc: &mut Proc, data: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        proc.check_running()?;
        let status = std::fs::read_to_string(data.join("postmaster.pid")).unwrap_or_default();
        if status.lines().nth(7).is_some_and(|l| l.trim() == "ready") {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "postgres not ready after 30 s; end of its log:\n{}",
            crate::log_tail(proc.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The user to run PostgreSQL as: `None` (ourselves) unless we are root.
fn owner() -> anyhow::Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = c"postgres";
    // SAFETY: a valid C string; the returned record is read at once, before any other
    // getpw* call of this thread.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    anyhow::ensure!(
        !pw.is_null(),
        "PostgreSQL refuses to run as root and there is no `postgres` user (install Debian's \
         postgresql package: `make tools`)"
    );
    // SAFETY: checked non-null above.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

/// Where clusters live: memory (`/dev/shm`) when there is one, else the temp dir. Tests
/// need no durability, and on a machine busy with builds a disk-backed copy or checkpoint
/// takes seconds.
fn base_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let writable = tempfile::tempdir_in(shm).is_ok();
    if writable {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// Removes cluster dirs left by test processes that no longer exist.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(base_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            release_shared_memory(&e.path().join("data"));
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Removes the System V segment of a killed postmaster (line 7 of `postmaster.pid`: key and
/// id), once nothing is attached to it.
fn release_shared_memory(data: &Path) {
    let status = std::fs::read_to_string(data.join("postmaster.pid")).unwrap_or_default();
    let Some(id) = status
        .lines()
        .nth(6)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|id| id.parse::<i32>().ok())
    else {
        return;
    };
    // SAFETY: shmctl only reads into / acts on the segment id it is given.
    unsafe {
        let mut ds: libc::shmid_ds = std::mem::zeroed();
        if libc::shmctl(id, libc::IPC_STAT, &mut ds) == 0 && ds.shm_nattch == 0 {
            libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
        }
    }
}

/// At exit: an immediate shutdown (SIGQUIT, which releases the shared memory), SIGKILL for
/// what is left, then the directory.
extern "C" fn stop_shared() {
    let shared = SHARED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(pg) = shared {
        if let Some(mut p) = pg.proc.lock().unwrap_or_else(|e| e.into_inner()).take() {
            if let Ok(pid) = i32::try_from(p.pid()) {
                // SAFETY: kill only sends a signal; the child is not reaped yet.
                unsafe { libc::kill(pid, libc::SIGQUIT) };
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while p.check_running().is_ok() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            p.kill();
        }
        let _ = std::fs::remove_dir_all(&pg.dir);
    }
}
