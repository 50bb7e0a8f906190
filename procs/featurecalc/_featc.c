/* The feature engine's per-book and per-trade arithmetic in C (procs/featurecalc/engine.py wraps
 * it). Hot on the development VM, FeatureEngine.update costs ~4 µs for one book and ~10 µs for
 * twelve, against ~25 µs (a Python-float path) and ~116 µs (the numpy array path it replaced:
 * a fixed ~110 µs per symbol); docs/benchmarks.md, "the feature engine in C".
 *
 * Each book is computed on its own, in arrival order, by the same operations whatever the batch:
 * a stream cut into any batches gives the same bytes as one batch over the whole capture. The
 * symbol's history lives in numpy arrays the engine owns and grows (``_Series``): books (key,
 * carried mid, prefix sum of r**2) and trades (key; prefix sums of px*qty, qty, side*qty); the
 * first live row is the sentinel or the oldest row a later lookup can land on. Python reserves
 * room before a call; the calls check it and raise rather than write past an array.
 *
 * Compiled with -ffp-contract=off (no fused multiply-add): every operation rounds as written.
 * The layout (record offsets, feature columns, windows) is LAYOUT, checked against
 * procs.featurecalc.layout at import.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define BOOK_SIZE 576
#define BOOK_RECV 16
#define BOOK_SYMBOL 32
#define BOOK_FLAGS 36
#define BOOK_NBIDS 40
#define BOOK_NASKS 42
#define BOOK_BID_PX 48
#define BOOK_BID_QTY 168
#define BOOK_ASK_PX 288
#define BOOK_ASK_QTY 408
#define DEPTH 15

#define TRADE_SIZE 64
#define TRADE_RECV 16
#define TRADE_SYMBOL 32
#define TRADE_SIDE 36
#define TRADE_PX 40
#define TRADE_QTY 48

#define FEAT_SIZE 192
#define FEAT_HEAD 40 /* seq, ts_event_ns, ts_recv_ns, (ts_pub_ns ->) ts_feat_ns, symbol, flags */
#define FEAT_TS 24
#define FEAT_FLAGS 36
#define FEAT_MID 40
#define FEAT_X 48
#define SLOTS 32

#define N_FEATURES 18
#define COL_SPREAD 0
#define COL_IMB 1 /* depths 1, 5, 15 */
#define COL_MICRO 4
#define COL_VWAP 5 /* windows 1 s, 10 s, 60 s */
#define COL_TFI 8
#define COL_RET 11 /* horizons 1 s, 10 s, 60 s */
#define COL_RV 14  /* windows 10 s, 60 s */
#define COL_COUNT 16 /* trades in 10 s */
#define COL_OK 17

#define BPS 1e4
#define N_BACK 3 /* lookbacks: 1 s, 10 s, 60 s (trades also at 0: now) */
static const int64_t BACK_NS[N_BACK] = {1000000000LL, 10000000000LL, 60000000000LL};
static const int IMB_DEPTH[3] = {1, 5, 15};
#define RV_FROM 1    /* RV windows are the lookbacks from this one on */
#define COUNT_BACK 1 /* the count window is this lookback */
#define FLAG_STALE 1u

static inline int
pos_finite(double v)
{
    return v > 0.0 && v < INFINITY; /* false for NaN */
}

static inline double
load_f64(const char *p)
{
    double v;
    memcpy(&v, p, 8);
    return v;
}

static inline int64_t
load_i64(const char *p)
{
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline int32_t
load_i32(const char *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline int16_t
load_i16(const char *p)
{
    int16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* The index of the last row in [lo + 1, hi) with key <= needle, or lo when none has. */
static inline int64_t
last_at_or_before(const int64_t *keys, int64_t lo, int64_t hi, int64_t needle)
{
    int64_t a = lo + 1, b = hi; /* first row with key > needle, in [a, b] */
    while (a < b) {
        int64_t m = a + (b - a) / 2;
        if (keys[m] <= needle)
            a = m + 1;
        else
            b = m;
    }
    return a - 1;
}

/* needle = key - offset, saturating (a key near INT64_MIN must not wrap) */
static inline int64_t
minus(int64_t key, int64_t offset)
{
    return key < INT64_MIN + offset ? INT64_MIN : key - offset;
}

/* One side's valid quantity at level 0 and cumulative valid quantity at the imbalance depths:
 * levels at or past the side's count, and quantities not positive and finite, add nothing. */
static inline void
side_sums(const char *qty, int n, double *q0, double sums[3])
{
    double acc = 0.0;
    int d = 0;
    *q0 = 0.0;
    for (int i = 0; i < DEPTH; i++) {
        double v = i < n ? load_f64(qty + 8 * i) : 0.0;
        if (!pos_finite(v))
            v = 0.0;
        if (i == 0)
            *q0 = v;
        acc += v;
        if (i + 1 == IMB_DEPTH[d])
            sums[d++] = acc;
    }
}

typedef struct {
    Py_buffer view;
    int held;
} Buf;

static void
release(Buf *bufs, int n)
{
    for (int i = 0; i < n; i++)
        if (bufs[i].held)
            PyBuffer_Release(&bufs[i].view);
}

static int
get(PyObject *obj, Buf *b, int writable, Py_ssize_t itemsize, const char *what)
{
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0)
        return -1;
    b->held = 1;
    if (b->view.len % itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes is not a whole number of %zd-byte items",
                     what, b->view.len, itemsize);
        return -1;
    }
    return 0;
}

static int
as_i64(PyObject *o, int64_t *out)
{
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

#define MAX_IDS 16

/* symbol_counts(records, itemsize, offset) -> [(symbol id, rows)] sorted by id, over the int32 at
 * ``offset`` of each record; None when the records hold more than MAX_IDS distinct ids (the
 * caller counts those itself). */
static PyObject *
symbol_counts(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "symbol_counts(records, itemsize, offset)");
        return NULL;
    }
    Py_ssize_t itemsize = PyLong_AsSsize_t(args[1]);
    Py_ssize_t offset = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred())
        return NULL;
    if (itemsize <= 0 || offset < 0 || offset + 4 > itemsize) {
        PyErr_SetString(PyExc_ValueError, "bad itemsize or offset");
        return NULL;
    }
    Buf b;
    memset(&b, 0, sizeof b);
    if (get(args[0], &b, 0, itemsize, "records") < 0) {
        release(&b, 1);
        return NULL;
    }
    Py_ssize_t n = b.view.len / itemsize;
    const char *base = b.view.buf;
    int32_t ids[MAX_IDS];
    Py_ssize_t counts[MAX_IDS];
    int k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t s = load_i32(base + i * itemsize + offset);
        int j = 0;
        while (j < k && ids[j] != s)
            j++;
        if (j == k) {
            if (k == MAX_IDS) {
                release(&b, 1);
                Py_RETURN_NONE;
            }
            ids[k] = s;
            counts[k++] = 0;
        }
        counts[j]++;
    }
    release(&b, 1);
    for (int i = 1; i < k; i++) /* insertion sort of at most MAX_IDS */
        for (int j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            int32_t t = ids[j];
            Py_ssize_t c = counts[j];
            ids[j] = ids[j - 1];
            counts[j] = counts[j - 1];
            ids[j - 1] = t;
            counts[j - 1] = c;
        }
    PyObject *out = PyList_New(k);
    for (int i = 0; out != NULL && i < k; i++) {
        PyObject *pair = Py_BuildValue("(ln)", (long)ids[i], counts[i]);
        if (pair == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, pair);
    }
    return out;
}

/* append_trades(trades, symbol, keys, vals, end) -> end: the symbol's trades of a TRADE_V1
 * batch, in order, onto its history (keys int64 [cap]; vals float64 [cap, 3]). */
static PyObject *
append_trades(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "append_trades(trades, symbol, keys, vals, end)");
        return NULL;
    }
    int64_t symbol, end;
    if (as_i64(args[1], &symbol) < 0 || as_i64(args[4], &end) < 0)
        return NULL;
    Buf b[3];
    memset(b, 0, sizeof b);
    PyObject *out = NULL;
    if (get(args[0], &b[0], 0, TRADE_SIZE, "trades") < 0 || get(args[2], &b[1], 1, 8, "keys") < 0
        || get(args[3], &b[2], 1, 24, "vals") < 0)
        goto done;
    int64_t cap = b[1].view.len / 8, n = b[0].view.len / TRADE_SIZE;
    if (b[2].view.len / 24 != cap || end < 1 || end > cap) {
        PyErr_SetString(PyExc_ValueError, "trades history: bad capacity or end");
        goto done;
    }
    const char *t = b[0].view.buf;
    int64_t *keys = b[1].view.buf;
    double *vals = b[2].view.buf;
    int64_t e = end;
    for (int64_t i = 0; i < n; i++, t += TRADE_SIZE) {
        if (load_i32(t + TRADE_SYMBOL) != symbol)
            continue;
        if (e >= cap) {
            PyErr_SetString(PyExc_ValueError, "trades history full: reserve first");
            goto done;
        }
        int64_t recv = load_i64(t + TRADE_RECV);
        double px = load_f64(t + TRADE_PX), qty = load_f64(t + TRADE_QTY);
        int8_t side = (int8_t)t[TRADE_SIDE];
        int good = pos_finite(px) && pos_finite(qty); /* an invalid trade counts as nothing */
        double q = good ? qty : 0.0, p = good ? px : 0.0;
        double sign = (double)((side > 0) - (side < 0));
        const double *last = vals + 3 * (e - 1);
        double *row = vals + 3 * e;
        row[0] = last[0] + p * q;
        row[1] = last[1] + q;
        row[2] = last[2] + sign * q;
        keys[e] = keys[e - 1] > recv ? keys[e - 1] : recv;
        e++;
    }
    out = PyLong_FromLongLong(e);
done:
    release(b, 3);
    return out;
}

typedef struct {
    int64_t *keys;
    double *mids, *cs; /* carried mid; prefix sum of r**2 */
    int64_t start, end, cap;
} BookHist;

typedef struct {
    const int64_t *keys;
    const double *vals; /* [cap, 3] */
    int64_t start, end;
} TradeHist;

/* The features of one book (a BOOK_V1 record) into ``out`` (a FEAT_V1 record). */
static void
book_one(const char *rec, BookHist *bh, TradeHist *th, char *out, int64_t ts_feat_ns,
         int mark_stale)
{
    double x[N_FEATURES] = {0.0};
    int n_b = load_i16(rec + BOOK_NBIDS), n_a = load_i16(rec + BOOK_NASKS);
    double bq0, aq0, bs[3], as[3];
    side_sums(rec + BOOK_BID_QTY, n_b, &bq0, bs);
    side_sums(rec + BOOK_ASK_QTY, n_a, &aq0, as);
    for (int d = 0; d < 3; d++) {
        double tot = bs[d] + as[d];
        x[COL_IMB + d] = tot > 0.0 ? (bs[d] - as[d]) / tot : 0.0;
    }
    double bid0 = load_f64(rec + BOOK_BID_PX), ask0 = load_f64(rec + BOOK_ASK_PX);
    int ok = n_b > 0 && pos_finite(bid0) && n_a > 0 && pos_finite(ask0);
    x[COL_OK] = ok ? 1.0 : 0.0;
    double mid_raw = ok ? 0.5 * (bid0 + ask0) : 0.0;
    if (ok) {
        x[COL_SPREAD] = (ask0 - bid0) * BPS / mid_raw;
        double q0 = bq0 + aq0;
        if (q0 > 0.0)
            x[COL_MICRO] = ((bid0 * aq0 + ask0 * bq0) / q0 - mid_raw) / mid_raw * BPS;
    }
    /* history: the book itself is never a lookback row (every horizon is positive) */
    int64_t e = bh->end, recv = load_i64(rec + BOOK_RECV);
    int64_t key = bh->keys[e - 1] > recv ? bh->keys[e - 1] : recv;
    double last_mid = bh->mids[e - 1], last_c = bh->cs[e - 1];
    double mid = ok ? mid_raw : last_mid; /* a degenerate book carries the last valid mid */
    int has_mid = mid > 0.0;
    int64_t back[N_BACK];
    for (int j = 0; j < N_BACK; j++)
        back[j] = last_at_or_before(bh->keys, bh->start, e, minus(key, BACK_NS[j]));
    double r = has_mid && last_mid > 0.0 ? log(mid / last_mid) : 0.0;
    double c = last_c + r * r;
    for (int j = 0; j < N_BACK; j++) {
        double m0 = bh->mids[back[j]];
        x[COL_RET + j] = has_mid && m0 > 0.0 ? log(mid / m0) * BPS : 0.0;
    }
    for (int j = RV_FROM; j < N_BACK; j++) {
        double var = c - bh->cs[back[j]];
        x[COL_RV + j - RV_FROM] = sqrt(var > 0.0 ? var : 0.0) * BPS;
    }
    bh->keys[e] = key;
    bh->mids[e] = mid;
    bh->cs[e] = c;
    bh->end = e + 1;
    bh->start = back[N_BACK - 1]; /* the oldest row any later lookup can land on */
    /* trade windows: prefix sums now and at each window's start */
    int64_t now = last_at_or_before(th->keys, th->start, th->end, key), at[N_BACK];
    const double *hi = th->vals + 3 * now;
    for (int j = 0; j < N_BACK; j++) {
        at[j] = last_at_or_before(th->keys, th->start, th->end, minus(key, BACK_NS[j]));
        const double *lo = th->vals + 3 * at[j];
        double d_pq = hi[0] - lo[0], q = hi[1] - lo[1], d_sq = hi[2] - lo[2];
        int traded = q > 0.0;
        double vwap = traded ? d_pq / q : 0.0;
        x[COL_VWAP + j] = traded && mid > 0.0 ? (vwap - mid) * BPS / mid : 0.0;
        x[COL_TFI + j] = traded ? d_sq / q : 0.0;
    }
    x[COL_COUNT] = log1p((double)(now - at[COUNT_BACK]));
    th->start = at[N_BACK - 1];
    /* the record: the book's head, the stamp, flags, mid, x as float32 (non-finite -> 0) */
    memcpy(out, rec, FEAT_HEAD);
    memcpy(out + FEAT_TS, &ts_feat_ns, 8);
    if (!ok && mark_stale) {
        uint32_t flags;
        memcpy(&flags, out + FEAT_FLAGS, 4);
        flags |= FLAG_STALE;
        memcpy(out + FEAT_FLAGS, &flags, 4);
    }
    memcpy(out + FEAT_MID, &mid, 8);
    float xf[SLOTS] = {0.0f};
    for (int i = 0; i < N_FEATURES; i++)
        xf[i] = isfinite(x[i]) ? (float)x[i] : 0.0f;
    memcpy(out + FEAT_X, xf, sizeof xf);
}

/* books(books, symbol, keys, vals, start, end, t_keys, t_vals, t_start, t_end, out, ts_feat_ns,
 *       mark_stale) -> (start, end, t_start): the features of the symbol's books of a BOOK_V1
 * batch, in order, into the same rows of ``out`` (FEAT_V1, as many records); the book history
 * is keys int64 [cap] and vals float64 [2, cap] (carried mid, prefix sum of r**2). */
static PyObject *
books(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 13) {
        PyErr_SetString(PyExc_TypeError,
                        "books(books, symbol, keys, vals, start, end, t_keys, t_vals, t_start, "
                        "t_end, out, ts_feat_ns, mark_stale)");
        return NULL;
    }
    int64_t symbol, start, end, t_start, t_end, ts_feat_ns;
    if (as_i64(args[1], &symbol) < 0 || as_i64(args[4], &start) < 0 || as_i64(args[5], &end) < 0
        || as_i64(args[8], &t_start) < 0 || as_i64(args[9], &t_end) < 0
        || as_i64(args[11], &ts_feat_ns) < 0)
        return NULL;
    int mark_stale = PyObject_IsTrue(args[12]);
    if (mark_stale < 0)
        return NULL;
    Buf b[6];
    memset(b, 0, sizeof b);
    PyObject *res = NULL;
    if (get(args[0], &b[0], 0, BOOK_SIZE, "books") < 0 || get(args[2], &b[1], 1, 8, "keys") < 0
        || get(args[3], &b[2], 1, 16, "vals") < 0 || get(args[6], &b[3], 0, 8, "t_keys") < 0
        || get(args[7], &b[4], 0, 24, "t_vals") < 0 || get(args[10], &b[5], 1, FEAT_SIZE, "out") < 0)
        goto done;
    int64_t n = b[0].view.len / BOOK_SIZE, cap = b[1].view.len / 8;
    int64_t t_cap = b[3].view.len / 8;
    if (b[5].view.len / FEAT_SIZE != n) {
        PyErr_SetString(PyExc_ValueError, "out must hold one FEAT_V1 record per book");
        goto done;
    }
    if (b[2].view.len / 16 != cap || start < 0 || start >= end || end > cap
        || b[4].view.len / 24 != t_cap || t_start < 0 || t_start >= t_end || t_end > t_cap) {
        PyErr_SetString(PyExc_ValueError, "history: bad capacity, start or end");
        goto done;
    }
    BookHist bh = {b[1].view.buf, b[2].view.buf, (double *)b[2].view.buf + cap, start, end, cap};
    TradeHist th = {b[3].view.buf, b[4].view.buf, t_start, t_end};
    const char *rec = b[0].view.buf;
    char *out = b[5].view.buf;
    for (int64_t i = 0; i < n; i++, rec += BOOK_SIZE, out += FEAT_SIZE) {
        if (load_i32(rec + BOOK_SYMBOL) != symbol)
            continue;
        if (bh.end >= cap) {
            PyErr_SetString(PyExc_ValueError, "book history full: reserve first");
            goto done;
        }
        book_one(rec, &bh, &th, out, ts_feat_ns, mark_stale);
    }
    res = Py_BuildValue("(LLL)", (long long)bh.start, (long long)bh.end, (long long)th.start);
done:
    release(b, 6);
    return res;
}

static PyMethodDef methods[] = {
    {"symbol_counts", (PyCFunction)(void (*)(void))symbol_counts, METH_FASTCALL,
     "symbol_counts(records, itemsize, offset) -> [(symbol id, rows)] sorted by id, or None "
     "past 16 distinct ids"},
    {"append_trades", (PyCFunction)(void (*)(void))append_trades, METH_FASTCALL,
     "append_trades(trades, symbol, keys, vals, end) -> end"},
    {"books", (PyCFunction)(void (*)(void))books, METH_FASTCALL,
     "books(books, symbol, keys, vals, start, end, t_keys, t_vals, t_start, t_end, out, "
     "ts_feat_ns, mark_stale) -> (start, end, t_start)"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "procs.featurecalc._featc",
    .m_doc = "The feature engine's per-book and per-trade arithmetic in C.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__featc(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyObject *layout = Py_BuildValue(
        "{s:(iiiiiiiiii),s:(iiiiii),s:(iiiiii),s:i,s:(iiiiiiiiii),s:(LLL),s:(iii),s:i,s:i,s:I}",
        "book", BOOK_SIZE, BOOK_RECV, BOOK_SYMBOL, BOOK_FLAGS, BOOK_NBIDS, BOOK_NASKS, BOOK_BID_PX,
        BOOK_BID_QTY, BOOK_ASK_PX, BOOK_ASK_QTY,
        "trade", TRADE_SIZE, TRADE_RECV, TRADE_SYMBOL, TRADE_SIDE, TRADE_PX, TRADE_QTY,
        "feat", FEAT_SIZE, FEAT_HEAD, FEAT_TS, FEAT_FLAGS, FEAT_MID, FEAT_X,
        "slots", SLOTS,
        "columns", N_FEATURES, COL_SPREAD, COL_IMB, COL_MICRO, COL_VWAP, COL_TFI, COL_RET, COL_RV,
        COL_COUNT, COL_OK,
        "lookback_ns", (long long)BACK_NS[0], (long long)BACK_NS[1], (long long)BACK_NS[2],
        "imbalance_depths", IMB_DEPTH[0], IMB_DEPTH[1], IMB_DEPTH[2],
        "depth", DEPTH, "rv_from", RV_FROM, "flag_stale", FLAG_STALE);
    if (layout == NULL || PyModule_AddObject(m, "LAYOUT", layout) < 0) {
        Py_XDECREF(layout);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
