//! Ground-truth factors of an image folder's pictures, from a CSV file (`vae train --factors
//! FILE.csv`): a header `file,<factor>,<factor>,…`, then one line per picture, its path
//! relative to the folder (`/` between components) and its value of each factor. A factor's
//! levels are its distinct values, in numeric order where all are numbers, else in text
//! order. The disentanglement scores draw factor combinations, so every combination must have
//! a picture (as in dSprites and every data set of disentanglement_lib).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What can be wrong with a factors file; each message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum FactorsError {
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{file}, line {line}: {why}")]
    Line { file: PathBuf, line: usize, why: String },
    #[error(
        "{file} gives {given} of the {total} combinations of its factors' values; the disentanglement scores draw \
         every combination, so each needs a picture (missing, e.g.: {example})"
    )]
    Incomplete { file: PathBuf, given: usize, total: usize, example: String },
    #[error(
        "{file} names {missing} pictures the folder does not hold (e.g. {example}); list each by its path in the folder"
    )]
    Unknown { file: PathBuf, missing: usize, example: String },
}

/// A folder's factors: names, each factor's levels, and each listed picture's levels.
#[derive(Clone, Debug, PartialEq)]
pub struct Factors {
    pub names: Vec<String>,
    /// Each factor's values, in level order.
    pub levels: Vec<Vec<String>>,
    /// Picture path → its level of each factor.
    pub of: HashMap<String, Vec<usize>>,
}

/// Whether every value parses as a number (then levels sort numerically).
fn numeric(values: &[String]) -> bool {
    values.iter().all(|v| v.trim().parse::<f64>().is_ok())
}

impl Factors {
    /// Parses `text`, read from `file` (named in errors).
    ///
    /// # Errors
    /// [`FactorsError::Line`] for a missing header, a line with another number of fields, a
    /// picture listed twice, or fewer than one factor.
    pub fn parse(text: &str, file: &Path) -> Result<Factors, FactorsError> {
        let err = |line: usize, why: String| FactorsError::Line { file: file.to_owned(), line, why };
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let (_, header) =
            lines.next().ok_or_else(|| err(1, "empty: the first line names the columns, file,<factor>,…".into()))?;
        let header: Vec<String> = header.split(',').map(|s| s.trim().to_string()).collect();
        if header.len() < 2 || !header[0].eq_ignore_ascii_case("file") {
            return Err(err(1, format!("the header must be file,<factor>,…; got {:?}", header.join(","))));
        }
        let names = header[1..].to_vec();
        let mut rows: Vec<(String, Vec<String>)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, line) in lines {
            let fields: Vec<String> = line.split(',').map(|s| s.trim().to_string()).collect();
            if fields.len() != header.len() {
                return Err(err(i + 1, format!("{} fields where the header has {}", fields.len(), header.len())));
            }
            if !seen.insert(fields[0].clone()) {
                return Err(err(i + 1, format!("{} is listed twice", fields[0])));
            }
            rows.push((fields[0].clone(), fields[1..].to_vec()));
        }
        if rows.is_empty() {
            return Err(err(2, "no pictures listed after the header".into()));
        }
        let levels: Vec<Vec<String>> = (0..names.len())
            .map(|k| {
                let mut values: Vec<String> = rows.iter().map(|(_, v)| v[k].clone()).collect();
                values.sort();
                values.dedup();
                if numeric(&values) {
                    values.sort_by(|a, b| a.parse::<f64>().unwrap_or(0.0).total_cmp(&b.parse::<f64>().unwrap_or(0.0)));
                }
                values
            })
            .collect();
        let index: Vec<HashMap<&str, usize>> =
            levels.iter().map(|l| l.iter().enumerate().map(|(i, v)| (v.as_str(), i)).collect()).collect();
        let of = rows
            .iter()
            .map(|(path, v)| (path.clone(), v.iter().enumerate().map(|(k, x)| index[k][x.as_str()]).collect()))
            .collect();
        Ok(Factors { names, levels, of })
    }

    /// Reads and parses `file`.
    ///
    /// # Errors
    /// [`FactorsError::Io`], or as [`Factors::parse`].
    pub fn read(file: &Path) -> Result<Factors, FactorsError> {
        let text = std::fs::read_to_string(file).map_err(|e| FactorsError::Io(file.to_owned(), e))?;
        Factors::parse(&text, file)
    }

    /// How many levels each factor has.
    pub fn counts(&self) -> Vec<usize> {
        self.levels.iter().map(Vec::len).collect()
    }

    /// Checks that every listed picture is among `paths` and every combination is listed;
    /// returns, for each combination (mixed-radix index, the last factor fastest), the position
    /// in `paths` of its first listed picture.
    ///
    /// # Errors
    /// [`FactorsError::Unknown`] or [`FactorsError::Incomplete`].
    pub fn index_pictures(&self, paths: &[String], file: &Path) -> Result<Vec<usize>, FactorsError> {
        let position: HashMap<&str, usize> = paths.iter().enumerate().map(|(i, p)| (p.as_str(), i)).collect();
        let mut unknown: Vec<&String> = self.of.keys().filter(|p| !position.contains_key(p.as_str())).collect();
        if !unknown.is_empty() {
            unknown.sort();
            return Err(FactorsError::Unknown {
                file: file.to_owned(),
                missing: unknown.len(),
                example: unknown[0].clone(),
            });
        }
        let counts = self.counts();
        let total: usize = counts.iter().product();
        let mut picture = vec![usize::MAX; total];
        let mut listed: Vec<(&String, &Vec<usize>)> = self.of.iter().collect();
        listed.sort_by_key(|(p, _)| position[p.as_str()]);
        for (path, levels) in listed {
            let c = combination(levels, &counts);
            if picture[c] == usize::MAX {
                picture[c] = position[path.as_str()];
            }
        }
        let given = picture.iter().filter(|&&p| p != usize::MAX).count();
        if let Some(missing) = picture.iter().position(|&p| p == usize::MAX) {
            let mut rest = missing;
            let mut levels = vec![0; counts.len()];
            for k in (0..counts.len()).rev() {
                levels[k] = rest % counts[k];
                rest /= counts[k];
            }
            let example =
                self.names.iter().zip(&levels).enumerate().map(|(k, (n, &l))| format!("{n}={}", self.levels[k][l]));
            return Err(FactorsError::Incomplete {
                file: file.to_owned(),
                given,
                total,
                example: example.collect::<Vec<_>>().join(" "),
            });
        }
        Ok(picture)
    }
}

/// The mixed-radix index of a combination of levels (the last factor fastest).
pub fn combination(levels: &[usize], counts: &[usize]) -> usize {
    levels.iter().zip(counts).fold(0, |acc, (&l, &n)| acc * n + l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> PathBuf {
        PathBuf::from("f.csv")
    }

    #[test]
    fn levels_sort_numerically_and_every_combination_is_found() {
        let text = "file,size,colour\na.png,10,red\nb.png,2,red\nc.png,10,blue\nd.png,2,blue\ne.png,2,blue\n";
        let f = Factors::parse(text, &file()).unwrap();
        assert_eq!(f.names, ["size", "colour"]);
        assert_eq!(f.levels, [vec!["2", "10"], vec!["blue", "red"]]);
        assert_eq!(f.of["a.png"], [1, 1]);
        let paths: Vec<String> = ["e.png", "d.png", "c.png", "b.png", "a.png"].map(String::from).to_vec();
        // Combinations (size, colour): (2, blue) → e.png first in the folder's order, (2, red)
        // → b.png, (10, blue) → c.png, (10, red) → a.png.
        assert_eq!(f.index_pictures(&paths, &file()).unwrap(), [0, 3, 2, 4]);
    }

    #[test]
    fn bad_files_are_refused_naming_the_line_and_the_fix() {
        let e = |text: &str| Factors::parse(text, &file()).unwrap_err().to_string();
        assert!(e("").contains("empty"));
        assert!(e("name,size\na.png,1\n").contains("the header must be file,<factor>"));
        assert!(e("file,size\na.png,1,2\n").contains("f.csv, line 2: 3 fields where the header has 2"));
        assert!(e("file,size\na.png,1\na.png,2\n").contains("line 3: a.png is listed twice"));
        let f = Factors::parse("file,x,y\na.png,0,0\nb.png,1,1\n", &file()).unwrap();
        let paths = vec!["a.png".to_string(), "b.png".to_string()];
        let err = f.index_pictures(&paths, &file()).unwrap_err().to_string();
        assert!(err.contains("gives 2 of the 4 combinations") && err.contains("x=0 y=1"), "{err}");
        let err = f.index_pictures(&paths[..1], &file()).unwrap_err().to_string();
        assert!(err.contains("names 1 pictures the folder does not hold (e.g. b.png)"), "{err}");
    }
}
