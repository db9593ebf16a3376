//! Connection options before the subcommand (`shiplog --url URL status chat`), moved
//! where clap accepts them.

/// Lets the connection options come before the subcommand, as in
/// `shiplog --url URL status chat`: clap only accepts them after a client
/// subcommand (so that `serve` never takes them), so they are moved to the end.
/// Everything else stays as it was; `serve --url` remains a usage error.
pub fn hoist_connection_options<I: IntoIterator<Item = std::ffi::OsString>>(
    args: I,
) -> Vec<std::ffi::OsString> {
    let mut args = args.into_iter();
    let mut kept: Vec<std::ffi::OsString> = args.next().into_iter().collect();
    let mut hoisted = Vec::new();
    let mut rest = args.peekable();
    while let Some(arg) = rest.peek() {
        let text = arg.to_string_lossy();
        let takes_value = matches!(text.as_ref(), "--url" | "--token" | "--output" | "-o");
        let inline = ["--url=", "--token=", "--output=", "-o"]
            .iter()
            .any(|p| text.starts_with(p) && text.len() > p.len());
        if takes_value {
            hoisted.extend(rest.next());
            hoisted.extend(rest.next());
        } else if inline {
            hoisted.extend(rest.next());
        } else {
            break;
        }
    }
    kept.extend(rest);
    kept.extend(hoisted);
    kept
}

#[cfg(test)]
mod tests {
    use super::hoist_connection_options;
    use std::ffi::OsString;

    fn hoist(args: &[&str]) -> Vec<String> {
        hoist_connection_options(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn connection_options_before_the_subcommand_move_after_it() {
        assert_eq!(
            hoist(&[
                "shiplog",
                "--url",
                "http://x:1",
                "-o",
                "json",
                "status",
                "chat"
            ]),
            [
                "shiplog",
                "status",
                "chat",
                "--url",
                "http://x:1",
                "-o",
                "json"
            ]
        );
        assert_eq!(
            hoist(&["shiplog", "--token=t", "-ojson", "usecase", "list"]),
            ["shiplog", "usecase", "list", "--token=t", "-ojson"]
        );
    }

    #[test]
    fn everything_else_stays_where_it_was() {
        for args in [
            &["shiplog", "status", "chat", "--url", "http://x:1"][..],
            &["shiplog", "--help"][..],
            &["shiplog", "serve", "--listen", "127.0.0.1:1"][..],
            &["shiplog", "config", "set", "chat", "-o=1"][..],
        ] {
            assert_eq!(hoist(args), args);
        }
    }
}
