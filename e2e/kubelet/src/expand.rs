//! Kubernetes `$(VAR)` expansion, a port of
//! `k8s.io/kubernetes/third_party/forked/golang/expansion`: `$(NAME)` is
//! replaced by the variable's value when it is defined and left as is when it
//! is not, `$$` is an escaped `$`, and any other `$` is literal.

use std::collections::HashMap;

/// Expands `input` with variables looked up in `vars`, in order (the first
/// map that defines a name wins, like `MappingFuncFor(context...)`).
pub fn expand(input: &str, vars: &[&HashMap<String, String>]) -> String {
    expand_with(input, |name| {
        vars.iter().find_map(|m| m.get(name)).map(String::as_str)
    })
}

pub fn expand_with<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    // Works on bytes like the Go original; every split point is next to an
    // ASCII '$', '(' or ')', so slices stay on UTF-8 boundaries. (Go turns the
    // byte after a lone '$' into a rune, mangling a non-ASCII character there;
    // we copy it through intact instead.)
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                // "$$" is an escaped operator.
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest[1..].find(')') {
                    Some(close) => {
                        let name = &rest[1..1 + close];
                        match lookup(name) {
                            Some(v) => out.push_str(v),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        close + 2
                    }
                    // Incomplete reference: emit "$(" and go on after it.
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                // A '$' that starts no expression is literal; the next
                // character is copied by the checkpoint logic.
                _ => {
                    out.push('$');
                    0
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.push_str(&input[checkpoint.min(input.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, String> {
        [
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    // Cases from the upstream expansion_test.go.
    #[test]
    fn upstream_cases() {
        let v = vars();
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_B)", "A-B"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("$(VAR_A)_$(VAR_B)", "A_B"),
            ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
            ("$$(VAR_A)$$(VAR_B)$$(VAR_C)", "$(VAR_A)$(VAR_B)$(VAR_C)"),
            ("$(VAR_A)$(VAR_B)$(VAR_C)", "ABC"),
            ("$(VAR_A)$$(VAR_B)$(VAR_C)", "A$(VAR_B)C"),
            ("$(VAR_REF)", "$(VAR_A)"),
            ("$(VAR_EMPTY)", ""),
            ("$(VAR_DNE)", "$(VAR_DNE)"),
            ("$(VAR_A", "$(VAR_A"),
            ("$VAR_A)", "$VAR_A)"),
            ("${VAR_A}", "${VAR_A}"),
            ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
            ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
            ("$$$$$$$(VAR_A)", "$$$A"),
            ("$$$$$$$GOOD_ODDS", "$$$$GOOD_ODDS"),
            ("$(VAR_A)$", "A$"),
            ("$", "$"),
            ("$$", "$"),
            ("$$$", "$$"),
            ("$(", "$("),
            ("$()", "$()"),
            ("$($(VAR_A))", "$($(VAR_A))"),
            ("foo$(VAR_A)$(VAR_A)", "fooAA"),
            ("$(VAR_A)(VAR_A)", "A(VAR_A)"),
            ("$(a)$(b)", "$(a)$(b)"),
            ("$$$()", "$$()"),
            ("", ""),
            ("é$(VAR_A)é$é", "éAé$é"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &[&v]), want, "input {input:?}");
        }
    }

    #[test]
    fn first_context_wins() {
        let a: HashMap<_, _> = [("X".to_string(), "1".to_string())].into();
        let b: HashMap<_, _> = [
            ("X".to_string(), "2".to_string()),
            ("Y".to_string(), "3".to_string()),
        ]
        .into();
        assert_eq!(expand("$(X)$(Y)", &[&a, &b]), "13");
    }
}
