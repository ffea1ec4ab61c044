//! "Did you mean ...?": the closest accepted name to a misspelt one, shared
//! by the config loader, the API's body parser and the CLI's messages.

/// Edit distance (insertions, deletions, substitutions, and swaps of two
/// neighbours, the commonest typo).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The accepted name closest to `given`, if it is close enough to be a typo
/// or the accepted name merely extends it (`probe_interval` for
/// `probe_interval_ms`).
pub fn did_you_mean<'a>(
    given: &str,
    accepted: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let given = given.to_ascii_lowercase();
    accepted
        .into_iter()
        .map(|a| {
            let d = if a.starts_with(&given) && given.len() >= 3 {
                1
            } else {
                distance(&given, a)
            };
            (d, a)
        })
        .filter(|(d, a)| *d <= (a.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_names_only() {
        let keys = ["probe_interval_ms", "probe_timeout_ms", "fanout", "port"];
        assert_eq!(
            did_you_mean("probe_interval", keys),
            Some("probe_interval_ms")
        );
        assert_eq!(
            did_you_mean("probe_intervl_ms", keys),
            Some("probe_interval_ms")
        );
        assert_eq!(did_you_mean("fanuot", keys), Some("fanout"));
        assert_eq!(did_you_mean("prot", keys), Some("port"));
        assert_eq!(did_you_mean("colour", keys), None);
    }
}
