"""Reference figures for `dci_agrees_with_scikit_learn` (tests/disentanglement.rs): DCI on a
small synthetic set, computed with scikit-learn's GradientBoostingClassifier() and
disentanglement_lib's dci.py formulas.

    python3 bench/dci_sklearn.py [SEED]    # needs numpy, scipy and scikit-learn; SEED
                                           # is random_state (default 0, the test's)

The data are closed-form (splitmix64 of each point and code), so the Rust test rebuilds them
bit for bit: 600 points, the first 400 to fit and the last 200 to score; three factors (3, 4
and 2 levels: the binary one exercises scikit-learn's one-tree binomial case); four codes,
each f32. scikit-learn visits features in an order drawn from random_state and keeps the
first best split on a tie, so other seeds move the importances a little (up to 0.0033 over
seeds 0-9).
"""
import sys

import numpy as np
import scipy.stats
import sklearn
from sklearn.ensemble import GradientBoostingClassifier

N, TRAIN, CODES = 600, 400, 4
SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 0


def noise(i, k):
    """splitmix64 of 16·i + k, as a uniform number in [−0.5, 0.5)."""
    mask = (1 << 64) - 1
    z = (16 * i + k + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    z ^= z >> 31
    return (z >> 11) / 2.0**53 - 0.5


def point(i):
    y = [i % 3, (i * 7 // 5) % 4, (i // 2) % 2]
    c = [
        y[0] + 1.5 * noise(i, 0),
        y[1] + noise(i, 1) + 0.3 * y[0],
        noise(i, 2),
        y[2] + 3.0 * noise(i, 3),
    ]
    return np.float32(c), y


codes, factors = zip(*(point(i) for i in range(N)))
x, y = np.array(codes, dtype=np.float32), np.array(factors)
importance = np.zeros((CODES, y.shape[1]))
acc_train, acc_test = [], []
for j in range(y.shape[1]):
    model = GradientBoostingClassifier(random_state=SEED).fit(x[:TRAIN], y[:TRAIN, j])
    importance[:, j] = np.abs(model.feature_importances_)
    acc_train.append(np.mean(model.predict(x[:TRAIN]) == y[:TRAIN, j]))
    acc_test.append(np.mean(model.predict(x[TRAIN:]) == y[TRAIN:, j]))

# disentanglement_lib/evaluation/metrics/dci.py
per_code = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=importance.shape[1])
disentanglement = np.sum(per_code * importance.sum(axis=1) / importance.sum())
per_factor = 1.0 - scipy.stats.entropy(importance + 1e-11, base=importance.shape[0])
completeness = np.sum(per_factor * importance.sum(axis=0) / importance.sum())

print(f"# scikit-learn {sklearn.__version__}, numpy {np.__version__}")
print("importance [codes][factors] =", repr(importance.tolist()))
print("informativeness train, test =", np.mean(acc_train), np.mean(acc_test), acc_train, acc_test)
print("disentanglement, completeness =", repr(disentanglement), repr(completeness))
