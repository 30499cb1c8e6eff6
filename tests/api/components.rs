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
/// or a frozen server looks to a client.
pub struct TcpForwarder {
    pub address: SocketAddr,
    black_hole: Arc<AtomicBool>,
    carried: Arc<Mutex<Vec<AbortHandle>>>,
    accept_loop: AbortHandle,
}

impl TcpForwarder {
    pub async fn to_mariadb() -> Self {
        let target: SocketAddr = "127.0.0.1:3306".parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let black_hole = Arc::new(AtomicBool::new(false));
        let carried: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (hole, tasks) = (black_hole.clone(), carried.clone());
        let accept_loop = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let hole = hole.clone();
                let task = tokio::spawn(async move {
                    if hole.load(Ordering::SeqCst) {
                        // Hold the socket open and say nothing until the test ends.
                        std::future::pending::<()>().await;
                    }
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(task.abort_handle());
            }
        })
        .abort_handle();
        Self {
            address,
            black_hole,
            carried,
            accept_loop,
        }
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
