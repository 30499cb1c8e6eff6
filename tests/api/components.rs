//! Real components the fault tests drive: a MariaDB login of the test's own that can be dropped
//! with its connections killed, and a TCP forwarder in front of MariaDB that can black-hole.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use uuid::Uuid;

use crate::helpers::mysql_server_url;

/// A MariaDB login of one test, with all privileges on one database; dropped with the test.
pub struct MariaDbLogin {
    pub user: String,
    pub password: String,
    database: String,
    server: DatabaseConnection,
}

impl MariaDbLogin {
    /// Creates the login and grants it every privilege on `database`.
    pub async fn create(database: &str) -> Self {
        let server = Database::connect(mysql_server_url())
            .await
            .expect("connect to MariaDB as the test login");
        let login = Self {
            user: format!("gct_{}", &Uuid::new_v4().simple().to_string()[..12]),
            password: format!("pw-{}", Uuid::new_v4().simple()),
            database: database.to_owned(),
            server,
        };
        login.restore().await;
        login
    }

    /// The URL the service connects with (through `host`, e.g. a forwarder).
    pub fn url_via(&self, host: SocketAddr) -> String {
        format!(
            "mysql://{}:{}@{host}/{}",
            self.user, self.password, self.database
        )
    }

    pub fn url(&self) -> String {
        self.url_via("127.0.0.1:3306".parse().unwrap())
    }

    async fn run(&self, sql: String) {
        self.server
            .execute_unprepared(&sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// (Re)creates the login, as an operator restoring access would.
    pub async fn restore(&self) {
        for host in ["localhost", "127.0.0.1"] {
            self.run(format!(
                "CREATE USER IF NOT EXISTS '{}'@'{host}' IDENTIFIED BY '{}'",
                self.user, self.password
            ))
            .await;
            // `_` is a wildcard in a GRANT's database name: escape it to name this one only.
            self.run(format!(
                "GRANT ALL PRIVILEGES ON `{}`.* TO '{}'@'{host}'",
                self.database.replace('_', "\\_"),
                self.user
            ))
            .await;
        }
    }

    /// Drops the login and kills every connection it has open: the database is gone for it.
    pub async fn drop_and_kill_connections(&self) {
        for host in ["localhost", "127.0.0.1"] {
            self.run(format!("DROP USER IF EXISTS '{}'@'{host}'", self.user))
                .await;
        }
        self.kill_connections().await;
    }

    /// Kills every connection the login has open (`KILL CONNECTION`), as a failover or an
    /// operator does; the login itself stays, so new connections are served.
    pub async fn kill_connections(&self) {
        let rows = self
            .server
            .query_all_raw(Statement::from_sql_and_values(
                self.server.get_database_backend(),
                "SELECT CAST(id AS SIGNED) FROM information_schema.processlist WHERE user = ?",
                [self.user.clone().into()],
            ))
            .await
            .expect("list the login's connections");
        assert!(!rows.is_empty(), "the service had no connection to kill");
        for row in rows {
            let id: i64 = row.try_get_by_index(0).unwrap();
            // A connection may end by itself between the listing and the kill.
            let _ = self
                .server
                .execute_unprepared(&format!("KILL CONNECTION {id}"))
                .await;
        }
    }
}

impl Drop for MariaDbLogin {
    fn drop(&mut self) {
        let user = self.user.clone();
        // Drop runs outside any runtime we may block: use a thread with its own runtime and a
        // connection of its own (the test's pool belongs to the test's runtime).
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let Ok(server) = Database::connect(mysql_server_url()).await else {
                        return;
                    };
                    for host in ["localhost", "127.0.0.1"] {
                        let _ = server
                            .execute_unprepared(&format!("DROP USER IF EXISTS '{user}'@'{host}'"))
                            .await;
                    }
                })
        })
        .join();
    }
}

/// A TCP forwarder to MariaDB on a port of its own. While black-holing it has cut every
/// connection it carried and accepts new ones without ever answering, as a network partition
/// or a frozen server looks to a client. Armed with [`TcpForwarder::cut_at_next_commit`], it
/// passes the next `COMMIT` on to the server and cuts that connection before the answer comes
/// back: the transaction commits and the client cannot know.
pub struct TcpForwarder {
    pub address: SocketAddr,
    black_hole: Arc<AtomicBool>,
    cut_at_commit: Arc<AtomicBool>,
    carried: Arc<Mutex<Vec<AbortHandle>>>,
    accept_loop: AbortHandle,
}

/// A `COMMIT` sent as a text query (`COM_QUERY`), as sqlx ends a transaction.
const COMMIT_QUERY: &[u8] = b"\x03COMMIT";

/// Carries one connection both ways; if `cut_at_commit` is armed when the client sends a
/// `COMMIT`, disarms it, mutes the server's answers, passes the `COMMIT` on, gives the server
/// time to commit, and drops both sockets.
async fn carry(client: TcpStream, server: TcpStream, cut_at_commit: Arc<AtomicBool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let muted = Arc::new(AtomicBool::new(false));
    let answers_muted = muted.clone();
    let answers = tokio::spawn(async move {
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = server_read.read(&mut buf).await {
            if answers_muted.load(Ordering::SeqCst)
                || client_write.write_all(&buf[..n]).await.is_err()
            {
                return;
            }
        }
    });
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n @ 1..) = client_read.read(&mut buf).await {
        let chunk = &buf[..n];
        let is_commit = chunk.windows(COMMIT_QUERY.len()).any(|w| w == COMMIT_QUERY);
        if is_commit && cut_at_commit.swap(false, Ordering::SeqCst) {
            muted.store(true, Ordering::SeqCst);
            let _ = server_write.write_all(chunk).await;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            break;
        }
        if server_write.write_all(chunk).await.is_err() {
            break;
        }
    }
    answers.abort();
}

impl TcpForwarder {
    pub async fn to_mariadb() -> Self {
        let target: SocketAddr = "127.0.0.1:3306".parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let black_hole = Arc::new(AtomicBool::new(false));
        let cut_at_commit = Arc::new(AtomicBool::new(false));
        let carried: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (hole, cut, tasks) = (black_hole.clone(), cut_at_commit.clone(), carried.clone());
        let accept_loop = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (hole, cut) = (hole.clone(), cut.clone());
                let task = tokio::spawn(async move {
                    if hole.load(Ordering::SeqCst) {
                        // Hold the socket open and say nothing until the test ends.
                        std::future::pending::<()>().await;
                    }
                    if let Ok(server) = TcpStream::connect(target).await {
                        carry(client, server, cut).await;
                    }
                });
                tasks.lock().unwrap().push(task.abort_handle());
            }
        })
        .abort_handle();
        Self {
            address,
            black_hole,
            cut_at_commit,
            carried,
            accept_loop,
        }
    }

    /// Arms the cut: the next `COMMIT` any carried connection sends reaches the server, and
    /// its connection is cut before the answer comes back.
    pub fn cut_at_next_commit(&self) {
        self.cut_at_commit.store(true, Ordering::SeqCst);
    }

    /// Whether an armed cut has happened.
    pub fn commit_was_cut(&self) -> bool {
        !self.cut_at_commit.load(Ordering::SeqCst)
    }

    /// Cuts every carried connection; new ones hang unanswered.
    pub fn black_hole(&self) {
        self.black_hole.store(true, Ordering::SeqCst);
        for task in self.carried.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Forwards new connections again, and cuts the ones it held unanswered.
    pub fn forward(&self) {
        self.black_hole.store(false, Ordering::SeqCst);
        for task in self.carried.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for TcpForwarder {
    fn drop(&mut self) {
        self.accept_loop.abort();
        for task in self.carried.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}
