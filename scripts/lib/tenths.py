"""Bring-up rates per tenth of N, for the scale benchmarks
(scripts/bench-scale.sh, scripts/bench-scale-swan.sh).

tenths(t0, ups, n): t0 the time of the first request, ups the times the
children came up (seconds, in order); returns the time from t0 to the
n-th child (seconds) and the children per second in each tenth of n, as
strings with one decimal. A flat list means the cost of one child does
not grow with the children already up.
"""


def tenths(t0, ups, n):
    rates, prev_t, prev_k = [], t0, 0
    for i in range(1, 11):
        k = (n * i + 9) // 10
        t = ups[k - 1]
        rates.append(str(round((k - prev_k) / max(t - prev_t, 0.001), 1)))
        prev_t, prev_k = t, k
    return ups[n - 1] - t0, rates


def print_bring_up(entries, first, up, n):
    """Prints "MS RATE1 ... RATE10": entries are (seconds, text) in log
    order; first(text) marks the first request, up(text) a child up."""
    t0, ups = None, []
    for t, text in entries:
        if t0 is None and first(text):
            t0 = t
        elif up(text):
            ups.append(t)
    total, rates = tenths(t0, ups, n)
    print(round(total * 1000), " ".join(rates))
