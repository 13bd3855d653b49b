//! The `keys` command line: parsing and the exact output.

use clap::{Parser, Subcommand};

use super::*;
use crate::cli::{CliError, KeysCommand};
use crate::{ApiKeys, NewKey};

#[derive(Parser, Debug)]
struct App {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(subcommand)]
    Keys(KeysCommand),
}

fn parse(args: &[&str]) -> KeysCommand {
    let mut argv = vec!["app", "keys"];
    argv.extend_from_slice(args);
    let App {
        command: Command::Keys(cmd),
    } = App::try_parse_from(argv).unwrap();
    cmd
}

async fn run(keys: &ApiKeys, args: &[&str]) -> Result<String, CliError> {
    let mut out = Vec::new();
    parse(args).run(keys, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

fn admin(clock: &ManualClock) -> (ApiKeys, TestStore) {
    let store = TestStore::new();
    let keys = ApiKeys::builder(store.clone())
        .prefix("sk_test")
        .clock(clock.clone())
        .build()
        .unwrap();
    (keys, store)
}

#[tokio::test]
async fn create_prints_fields_then_the_key_last() {
    let clock = clock();
    let (keys, _) = admin(&clock);
    let out = run(
        &keys,
        &[
            "create",
            "--owner",
            "alice",
            "--scopes",
            "write:items read:items",
            "--name",
            "ci",
            "--expires-in",
            "90d",
            "--metadata",
            r#"{"team":"x"}"#,
        ],
    )
    .await
    .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    let id = lines[0].strip_prefix("id ").unwrap();
    assert!(id.starts_with("key_"));
    assert_eq!(lines[1], "owner alice");
    assert_eq!(lines[2], "name ci");
    assert_eq!(lines[3], "scopes read:items write:items");
    assert_eq!(lines[4], "created 2027-01-15T08:00:00Z");
    assert_eq!(lines[5], "expires 2027-04-15T08:00:00Z");
    assert_eq!(lines[6], "limits -");
    let key = *lines.last().unwrap();
    assert!(key.starts_with("sk_test_") && !key.contains(' '));
    let r = keys.get(id).await.unwrap().unwrap();
    assert_eq!(r.metadata["team"], "x");

    // Without options.
    let out = run(&keys, &["create", "--owner", "bob"]).await.unwrap();
    assert!(
        out.contains("\nname -\n") && out.contains("\nscopes \n") && out.contains("\nexpires -\n")
    );
}

#[tokio::test]
async fn list_is_a_header_and_tab_separated_rows() {
    let clock = clock();
    let (keys, _) = admin(&clock);
    let a = keys
        .create(
            NewKey::new("alice")
                .scopes(["b", "a"])
                .expires_in(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let b = keys.create(NewKey::new("bob")).await.unwrap();
    keys.revoke(&b.record.id).await.unwrap();
    let out = run(&keys, &["list"]).await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "id\towner\tscopes\tcreated\texpires\trevoked\tlimits"
    );
    assert_eq!(
        lines[1],
        format!(
            "{}\talice\ta b\t2027-01-15T08:00:00Z\t2027-01-15T08:01:00Z\t-\t-",
            a.record.id
        )
    );
    assert_eq!(
        lines[2],
        format!(
            "{}\tbob\t\t2027-01-15T08:00:01Z\t-\t2027-01-15T08:00:01Z\t-",
            b.record.id
        )
    );
    assert_eq!(lines.len(), 3);
    assert!(!out.contains(a.key.expose_secret()));
}

#[tokio::test]
async fn revoke_prints_revoked_id_and_unknown_ids_are_errors() {
    let clock = clock();
    let (keys, _) = admin(&clock);
    let a = keys.create(NewKey::new("alice")).await.unwrap();
    let out = run(&keys, &["revoke", &a.record.id]).await.unwrap();
    assert_eq!(out, format!("revoked {}\n", a.record.id));
    assert!(keys.get(&a.record.id).await.unwrap().unwrap().is_revoked());
    let e = run(&keys, &["revoke", "key_nope"]).await.unwrap_err();
    assert!(matches!(&e, CliError::NotFound(id) if id == "key_nope"));
    assert_eq!(e.to_string(), "no api key with id key_nope");
    let e = run(&keys, &["rotate", "key_nope"]).await.unwrap_err();
    assert!(matches!(e, CliError::NotFound(_)));
}

#[tokio::test]
async fn rotate_prints_the_new_id_and_key_last_with_a_default_grace_of_a_day() {
    let clock = clock();
    let (keys, _) = admin(&clock);
    let old = keys
        .create(NewKey::new("alice").scopes(["read"]))
        .await
        .unwrap();
    let out = run(&keys, &["rotate", &old.record.id]).await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    let new_id = lines[0].strip_prefix("id ").unwrap();
    assert_ne!(new_id, old.record.id);
    assert!(lines.contains(&"scopes read"));
    assert!(lines.contains(&"old_expires 2027-01-16T08:00:00Z"), "{out}");
    let key = *lines.last().unwrap();
    assert!(key.starts_with("sk_test_"));
    assert_ne!(key, old.key.expose_secret());

    let out = run(&keys, &["rotate", new_id, "--grace", "15m"])
        .await
        .unwrap();
    assert!(out.contains("old_expires 2027-01-15T08:15:00Z"), "{out}");
}

#[test]
fn durations_are_humantime_and_bad_ones_are_rejected() {
    for d in ["30s", "15m", "24h", "90d"] {
        App::try_parse_from(["app", "keys", "rotate", "key_x", "--grace", d]).unwrap();
    }
    let e = App::try_parse_from([
        "app",
        "keys",
        "create",
        "--owner",
        "a",
        "--expires-in",
        "soon",
    ])
    .unwrap_err();
    assert!(e.to_string().contains("90d"), "{e}");
    assert!(
        App::try_parse_from(["app", "keys", "create"]).is_err(),
        "owner is required"
    );
    assert!(
        App::try_parse_from(["app", "keys", "create", "--owner", "a", "--metadata", "{"]).is_err()
    );
}

/// The last tab-separated field of the `list` row of `id`.
async fn listed_limits(keys: &ApiKeys, id: &str) -> String {
    let out = run(keys, &["list"]).await.unwrap();
    let row = out.lines().find(|l| l.starts_with(id)).unwrap();
    row.rsplit('\t').next().unwrap().to_owned()
}

#[tokio::test]
async fn create_and_update_set_limits_and_list_shows_them() {
    let clock = clock();
    let (keys, store) = admin(&clock);
    let out = run(
        &keys,
        &[
            "create",
            "--owner",
            "alice",
            "--rate",
            "100/1s",
            "--burst",
            "200",
            "--credits",
            "10000",
            "--refill",
            "10000/30d",
        ],
    )
    .await
    .unwrap();
    assert!(
        out.contains("\nlimits rate=100/1s burst=200 credits=10000 refill=10000/30days\n"),
        "{out}"
    );
    let id = out.lines().next().unwrap().strip_prefix("id ").unwrap();
    assert_eq!(
        listed_limits(&keys, id).await,
        "rate=100/1s burst=200 credits=10000 refill=10000/30days"
    );

    // Credits spent (written back by a server) show as what remains.
    store
        .spend_credits(&[(id.to_owned(), 124, t0())])
        .await
        .unwrap();
    assert!(listed_limits(&keys, id).await.contains("credits=9876"));

    // --burst alone keeps the rate; none goes back to the rate's count.
    let out = run(&keys, &["update", id, "--burst", "50"]).await.unwrap();
    assert!(
        out.starts_with(&format!("updated {id} rate=100/1s burst=50 ")),
        "{out}"
    );
    run(&keys, &["update", id, "--rate", "5/1m", "--burst", "none"])
        .await
        .unwrap();
    assert!(
        listed_limits(&keys, id)
            .await
            .starts_with("rate=5/1m burst=5 credits=9876")
    );

    // --credits N sets the remaining count; none removes each limit.
    run(&keys, &["update", id, "--credits", "3", "--refill", "none"])
        .await
        .unwrap();
    assert_eq!(
        listed_limits(&keys, id).await,
        "rate=5/1m burst=5 credits=3"
    );
    run(
        &keys,
        &["update", id, "--rate", "none", "--credits", "none"],
    )
    .await
    .unwrap();
    assert_eq!(listed_limits(&keys, id).await, "-");

    // A refill alone gives credits of its count.
    run(&keys, &["update", id, "--refill", "7/1d"])
        .await
        .unwrap();
    assert_eq!(listed_limits(&keys, id).await, "credits=7 refill=7/1day");

    let e = run(&keys, &["update", "key_nope", "--credits", "1"])
        .await
        .unwrap_err();
    assert!(matches!(e, CliError::NotFound(_)), "{e}");
}

#[tokio::test]
async fn bad_limit_values_name_the_flag_and_the_value() {
    let clock = clock();
    let (keys, _) = admin(&clock);
    for (args, flag, value) in [
        (
            &["create", "--owner", "a", "--rate", "100"][..],
            "--rate",
            "100",
        ),
        (
            &["create", "--owner", "a", "--rate", "0/1s"],
            "--rate",
            "0/1s",
        ),
        (
            &["create", "--owner", "a", "--rate", "1/1s", "--burst", "two"],
            "--burst",
            "two",
        ),
        (
            &["create", "--owner", "a", "--credits", "lots"],
            "--credits",
            "lots",
        ),
        (
            &["create", "--owner", "a", "--refill", "5/soon"],
            "--refill",
            "5/soon",
        ),
        (
            &["update", "key_x", "--rate", "nothing"],
            "--rate",
            "nothing",
        ),
        (&["update", "key_x", "--credits", "1.5"], "--credits", "1.5"),
    ] {
        let mut argv = vec!["app", "keys"];
        argv.extend_from_slice(args);
        let e = App::try_parse_from(argv).unwrap_err().to_string();
        assert!(e.contains(flag) && e.contains(value), "{args:?}: {e}");
    }
    // A burst without a rate: refused by clap on create, by the command on update.
    assert!(
        App::try_parse_from(["app", "keys", "create", "--owner", "a", "--burst", "5"]).is_err()
    );
    let a = keys.create(NewKey::new("alice")).await.unwrap();
    let e = run(&keys, &["update", &a.record.id, "--burst", "5"])
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            CliError::Invalid {
                flag: "--burst",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("\"5\""), "{e}");
    let e = run(
        &keys,
        &["create", "--owner", "a", "--rate", "1/1s", "--burst", "0"],
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("--burst"), "{e}");
    let e = run(&keys, &["update", &a.record.id]).await.unwrap_err();
    assert!(e.to_string().contains("nothing to update"), "{e}");
}
