//! Regression test: `keyprov serve` used to create a new master key when `<db>.key` was
//! missing beside a server database that holds sealed secrets, after which no sealed AC,
//! K_SHARED or K_SERVER opened. It now refuses, naming both files; a new database still gets
//! its key.

mod dskpp_support;

use dskpp_support::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim_end().to_string()
}

#[test]
fn a_missing_server_key_beside_sealed_secrets_is_an_error_and_nothing_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let key = dir.path().join("server.db.key");
    // A fresh database gets its key; the AC password is sealed with it.
    let (ac, _, _) = issue(&db, "C1", &[]);
    assert!(key.exists());
    let backup = dir.path().join("server.db.key.backup");
    std::fs::rename(&key, &backup).unwrap();

    let db_arg = db.to_str().unwrap();
    let out = keyprov(&["serve", "--listen", "127.0.0.1:0", "--db", db_arg]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        format!(
            "error: opening {db}: master key {key} is missing, but the DSKPP server database \
             {db} holds 1 secret sealed with it; restore {key} from your backup — a new key \
             could not open them",
            db = db.display(),
            key = key.display()
        )
    );
    // The operator commands refuse too, and none of them created a key.
    let out = keyprov(&["ac", "issue", "--db", db_arg, "--client-id", "C2"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is missing, but the DSKPP server database"));
    assert!(!key.exists(), "no new master key was created");

    // Restored from the backup, the server starts and the sealed AC still opens: a run with
    // it gets a key.
    std::fs::rename(&backup, &key).unwrap();
    let server = ServerProcess::start(&db, "127.0.0.1:0");
    let out = dir.path().join("C1.pskcxml");
    let run = provision(&server.url, &ac, "four-pass", None, &out);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(read_pskc(&out).keys().count(), 1);
}
