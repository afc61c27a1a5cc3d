//! Where two states differ, for a violation message: the first line of
//! their pretty `Debug` forms that differs, both ways, so that whoever
//! reads the violation is pointed into the state rather than handed two
//! whole dumps.

use std::fmt::Debug;

/// The first differing line of `replayed` and `restored`, as "replayed
/// `…` where the snapshot has `…` (line N of the state)".
#[must_use]
pub fn first_difference<T: Debug>(replayed: &T, restored: &T) -> String {
    let (a, b) = (format!("{replayed:#?}"), format!("{restored:#?}"));
    let at = a
        .lines()
        .zip(b.lines())
        .position(|(x, y)| x != y)
        .unwrap_or_else(|| a.lines().count().min(b.lines().count()));
    let line = |s: &str| s.lines().nth(at).unwrap_or("(end)").trim().to_owned();
    format!(
        "replayed `{}` where the snapshot has `{}` (line {} of the state)",
        line(&a),
        line(&b),
        at + 1
    )
}

#[cfg(test)]
mod tests {
    use super::first_difference;

    #[test]
    fn names_the_first_line_that_differs() {
        let text = first_difference(&vec![1, 2, 3], &vec![1, 5, 3]);
        assert_eq!(
            text,
            "replayed `2,` where the snapshot has `5,` (line 3 of the state)"
        );
    }

    #[test]
    fn a_shorter_state_differs_where_it_ends() {
        let text = first_difference(&vec![1, 2], &vec![1]);
        assert_eq!(
            text,
            "replayed `2,` where the snapshot has `]` (line 3 of the state)"
        );
    }
}
