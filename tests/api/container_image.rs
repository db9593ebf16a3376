//! The `Dockerfile`, checked without building it (no Docker engine runs here): every base
//! image pinned, the dependencies in a layer of their own, the final stage not root, the
//! `shiplog` binary as entrypoint, and the exposed ports those `shiplog serve` listens on by
//! default, listening outside the container.

use std::path::Path;
use std::process::Command;

fn repository_file(path: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// One instruction: its keyword (upper case) and its arguments, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The instructions of a Dockerfile, comments and blank lines left out.
fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.trim().to_owned(),
                });
                current.clear();
            }
        }
    }
    out
}

/// The stages: each `FROM` with the instructions up to the next.
fn stages(instructions: &[Instruction]) -> Vec<&[Instruction]> {
    let starts: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, i)| i.keyword == "FROM")
        .map(|(n, _)| n)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &start)| {
            let end = starts.get(k + 1).copied().unwrap_or(instructions.len());
            &instructions[start..end]
        })
        .collect()
}

/// The `[[bin]]` name api/Cargo.toml gives the binary.
/// The workspace's members, from `members = [...]` in the root Cargo.toml.
fn workspace_members() -> Vec<String> {
    let manifest = repository_file("Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .unwrap_or_else(|| panic!("no members line in Cargo.toml"));
    let list = line
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .unwrap_or_else(|| panic!("members is not a one-line list: {line}"));
    let members: Vec<String> = list
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    assert!(members.len() > 5, "{members:?}");
    members
}

fn binary_name() -> String {
    let manifest = repository_file("api/Cargo.toml");
    let bin = manifest
        .split("[[bin]]")
        .nth(1)
        .unwrap_or_else(|| panic!("api/Cargo.toml has no [[bin]]"));
    bin.lines()
        .take_while(|l| !l.trim_start().starts_with('['))
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "name").then(|| value.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("the [[bin]] of api/Cargo.toml has no name"))
}

/// The port of `shiplog serve`'s default for `flag`, as its `--help` states it.
fn default_port(help: &str, flag: &str) -> u16 {
    let after = help
        .split_once(&format!("{flag} <"))
        .unwrap_or_else(|| panic!("serve --help does not document {flag}"))
        .1;
    let default = after
        .split_once("[default: ")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(value, _)| value)
        .unwrap_or_else(|| panic!("{flag} has no default"));
    port_of(default)
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("{address} is not host:port"))
}

/// The exec-form arguments of an instruction (`["a", "b"]`).
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("{args} is not exec form: {e}"))
}

#[test]
fn the_dockerfile_pins_its_images_runs_shiplog_unprivileged_and_exposes_its_ports() {
    let text = repository_file("Dockerfile");
    let instructions = instructions(&text);
    let stages = stages(&instructions);
    assert!(stages.len() >= 2, "a build stage and a runtime stage");

    // Every base image pinned: a version in its tag, or a digest; never `latest`.
    let mut stage_names = Vec::new();
    for stage in &stages {
        let from = &stage[0].args;
        let mut words = from.split_whitespace();
        let image = words.next().unwrap_or_default();
        let earlier_stage = stage_names.iter().any(|s| s == image);
        if let (Some(as_), Some(name)) = (words.next(), words.next()) {
            assert!(as_.eq_ignore_ascii_case("as"), "FROM {from}");
            stage_names.push(name.to_owned());
        }
        if earlier_stage {
            continue; // pinned where that stage is defined
        }
        let (name, tag) = image.split_once('@').map_or_else(
            || image.rsplit_once(':').unwrap_or((image, "")),
            |(name, digest)| (name, digest),
        );
        assert!(
            tag.starts_with("sha256:")
                || (tag != "latest" && tag.chars().any(|c| c.is_ascii_digit())),
            "FROM {image}: pin {name} by a version tag or a digest"
        );
    }

    // The builder uses the toolchain the project builds with (major.minor).
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let version = rustc.split_whitespace().nth(1).unwrap_or_default();
    let minor: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let builder = &stages[0][0].args;
    assert!(
        builder.starts_with(&format!("rust:{minor}")),
        "the builder ({builder}) should be the project's Rust {version}"
    );

    // The dependencies are built before the sources are copied: the layer Docker caches.
    let build = stages[0];
    let bin = binary_name();
    let build_command = format!("cargo build --release --locked --bin {bin}");
    let first_build = build
        .iter()
        .position(|i| i.keyword == "RUN" && i.args.contains(&build_command));
    let copy_all = build
        .iter()
        .position(|i| i.keyword == "COPY" && i.args.starts_with(". "));
    assert!(
        matches!((first_build, copy_all), (Some(b), Some(c)) if b < c),
        "a `{build_command}` over the manifests before `COPY . .`"
    );
    // That build loads the whole workspace: every member's manifest must be there, or
    // cargo stops before compiling anything (as it would have when testkit/ was added).
    let before_build = &build[..=first_build.unwrap_or(0)];
    for member in workspace_members() {
        let copy = format!("{member}/Cargo.toml {member}/");
        assert!(
            before_build
                .iter()
                .any(|i| i.keyword == "COPY" && i.args == copy),
            "the dependency layer copies `{copy}` (a member of the workspace)"
        );
        assert!(
            before_build
                .iter()
                .any(|i| i.keyword == "RUN" && i.args.contains(&format!(" {member}"))),
            "the dependency layer gives {member} placeholder sources"
        );
    }

    // The runtime: not root, the binary as entrypoint, serve by default.
    let runtime = stages[stages.len() - 1];
    let user = runtime
        .iter()
        .rev()
        .find(|i| i.keyword == "USER")
        .map(|i| i.args.split(':').next().unwrap_or_default().to_owned())
        .unwrap_or_else(|| panic!("the final stage sets no USER (it would run as root)"));
    assert!(user != "root" && user != "0", "USER {user} is root");
    assert!(
        user.parse::<u32>().is_ok(),
        "USER {user}: numeric, so runAsNonRoot can verify it"
    );
    let entrypoint = runtime
        .iter()
        .find(|i| i.keyword == "ENTRYPOINT")
        .map(|i| exec_form(&i.args))
        .unwrap_or_default();
    assert_eq!(entrypoint, [format!("/usr/local/bin/{bin}")]);
    let cmd = runtime
        .iter()
        .find(|i| i.keyword == "CMD")
        .map(|i| exec_form(&i.args));
    assert_eq!(cmd, Some(vec!["serve".to_owned()]));
    assert!(
        runtime
            .iter()
            .any(|i| i.keyword == "COPY" && i.args.ends_with(&format!("/usr/local/bin/{bin}"))),
        "the binary is copied to its entrypoint"
    );

    // The exposed ports are serve's defaults, listened on outside the container.
    let help = Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(["serve", "--help"])
        .env_remove("SHIPLOG_LISTEN")
        .env_remove("SHIPLOG_PROXY_LISTEN")
        .output()
        .unwrap_or_else(|e| panic!("shiplog serve --help: {e}"));
    let help = String::from_utf8_lossy(&help.stdout);
    let defaults = vec![
        default_port(&help, "--listen"),
        default_port(&help, "--proxy-listen"),
    ];
    let mut exposed: Vec<u16> = runtime
        .iter()
        .filter(|i| i.keyword == "EXPOSE")
        .flat_map(|i| {
            i.args
                .split_whitespace()
                .map(|p| {
                    p.trim_end_matches("/tcp")
                        .parse()
                        .unwrap_or_else(|e| panic!("EXPOSE {p}: {e}"))
                })
                .collect::<Vec<u16>>()
        })
        .collect();
    exposed.sort_unstable();
    let mut sorted = defaults.clone();
    sorted.sort_unstable();
    assert_eq!(
        exposed, sorted,
        "EXPOSE the API's and the proxy's default ports"
    );
    let env: String = runtime
        .iter()
        .filter(|i| i.keyword == "ENV")
        .map(|i| format!("{} ", i.args))
        .collect();
    for (variable, port) in [
        ("SHIPLOG_LISTEN", defaults[0]),
        ("SHIPLOG_PROXY_LISTEN", defaults[1]),
    ] {
        assert!(
            env.split_whitespace()
                .any(|kv| kv == format!("{variable}=0.0.0.0:{port}")),
            "ENV {variable}=0.0.0.0:{port}, so it is reachable from outside the container: {env}"
        );
    }
}

#[test]
fn the_build_context_leaves_out_build_output_and_history() {
    let ignored = repository_file(".dockerignore");
    let entries: Vec<&str> = ignored
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target/", ".git"] {
        assert!(
            entries.contains(&needed),
            ".dockerignore lacks {needed}: {entries:?}"
        );
    }
}
