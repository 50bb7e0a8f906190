/* One BOOK_V1 row from a decoded depth push, in C (procs/marketdata/normalise.py wraps it).
 *
 * The Python form (a transpose of the levels with zip, then one struct pack of 64 values) cost
 * ~3.6 µs a book hot and ~22 µs in the colocated hot path (its frame's callback, caches cold
 * after a pass); this reads each level's two floats straight into the row. Same bytes: the
 * row's head (ts_event_ns .. n_asks), the levels best first, NaN past the last level kept, and
 * zeros where ts_pub_ns and the padding after n_asks are (seq and ts_pub_ns are set at publish).
 *
 * The layout is LAYOUT, checked against shm.records.BOOK_V1 at import (normalise.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "BOOK_V1 is little-endian: this writer copies native integers and doubles"
#endif

#define BOOK_SIZE 576
#define BOOK_EVENT 8
#define BOOK_RECV 16
#define BOOK_PUB 24
#define BOOK_SYMBOL 32
#define BOOK_FLAGS 36
#define BOOK_NBIDS 40
#define BOOK_NASKS 42
#define BOOK_BID_PX 48
#define BOOK_BID_QTY 168
#define BOOK_ASK_PX 288
#define BOOK_ASK_QTY 408
#define DEPTH 15
#define FLAG_CROSSED 0x8u

static double
as_double(PyObject *o)
{
    return PyFloat_CheckExact(o) ? PyFloat_AS_DOUBLE(o) : PyFloat_AsDouble(o);
}

/* The first DEPTH levels of ``levels`` (a sequence of (price, size) pairs) into px and qty,
 * NaN past the last; the count kept, or -1 with an exception set. */
static Py_ssize_t
side(PyObject *levels, double *px, double *qty, const char *name)
{
    PyObject *seq = PySequence_Fast(levels, "book levels must be a sequence");
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > DEPTH)
        n = DEPTH;
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *lv = items[i], *p, *q;
        if (PyTuple_CheckExact(lv) && PyTuple_GET_SIZE(lv) == 2) {
            p = PyTuple_GET_ITEM(lv, 0);
            q = PyTuple_GET_ITEM(lv, 1);
        }
        else if (PyList_CheckExact(lv) && PyList_GET_SIZE(lv) == 2) {
            p = PyList_GET_ITEM(lv, 0);
            q = PyList_GET_ITEM(lv, 1);
        }
        else {
            PyErr_Format(PyExc_ValueError, "%s level %zd is not a (price, size) pair", name, i);
            goto fail;
        }
        if ((px[i] = as_double(p)) == -1.0 && PyErr_Occurred())
            goto fail;
        if ((qty[i] = as_double(q)) == -1.0 && PyErr_Occurred())
            goto fail;
    }
    Py_DECREF(seq);
    for (Py_ssize_t i = n; i < DEPTH; i++)
        px[i] = qty[i] = NAN;
    return n;
fail:
    Py_DECREF(seq);
    return -1;
}

/* pack(row_bytes, ts_event_ns, ts_recv_ns, symbol_id, flags, bids, asks) -> flags */
static PyObject *
pack(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "pack takes 7 arguments");
        return NULL;
    }
    long long ts_event = PyLong_AsLongLong(args[1]);
    if (ts_event == -1 && PyErr_Occurred())
        return NULL;
    long long ts_recv = PyLong_AsLongLong(args[2]);
    if (ts_recv == -1 && PyErr_Occurred())
        return NULL;
    long sid = PyLong_AsLong(args[3]);
    if (sid == -1 && PyErr_Occurred())
        return NULL;
    if (sid < INT32_MIN || sid > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "symbol_id out of int32 range");
        return NULL;
    }
    unsigned long flags = PyLong_AsUnsignedLong(args[4]);
    if (flags == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    if (flags > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "flags out of uint32 range");
        return NULL;
    }
    double lv[4][DEPTH];
    Py_ssize_t nb = side(args[5], lv[0], lv[1], "bid");
    if (nb < 0)
        return NULL;
    Py_ssize_t na = side(args[6], lv[2], lv[3], "ask");
    if (na < 0)
        return NULL;
    if (nb && na && lv[0][0] >= lv[2][0])
        flags |= FLAG_CROSSED;

    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0)
        return NULL;
    if (view.len != BOOK_SIZE) {
        PyErr_Format(PyExc_ValueError, "a book row is %d bytes, got %zd", BOOK_SIZE, view.len);
        PyBuffer_Release(&view);
        return NULL;
    }
    char *row = view.buf;
    int64_t i64[3] = {ts_event, ts_recv, 0};
    memcpy(row + BOOK_EVENT, i64, sizeof i64); /* ts_event_ns, ts_recv_ns, ts_pub_ns */
    int32_t s32 = (int32_t)sid;
    uint32_t f32 = (uint32_t)flags;
    int16_t n16[2] = {(int16_t)nb, (int16_t)na};
    memcpy(row + BOOK_SYMBOL, &s32, 4);
    memcpy(row + BOOK_FLAGS, &f32, 4);
    memcpy(row + BOOK_NBIDS, n16, 4);
    memset(row + BOOK_NASKS + 2, 0, BOOK_BID_PX - BOOK_NASKS - 2);
    memcpy(row + BOOK_BID_PX, lv, sizeof lv); /* bid_px, bid_qty, ask_px, ask_qty: contiguous */
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(flags);
}

static PyMethodDef methods[] = {
    {"pack", (PyCFunction)(void (*)(void))pack, METH_FASTCALL,
     "pack(row, ts_event_ns, ts_recv_ns, symbol_id, flags, bids, asks) -> flags: write one "
     "BOOK_V1 row (a writable 576-byte buffer) from (price, size) levels, best first; the "
     "flags written (FLAG_CROSSED added when the best bid is at or above the best ask)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "procs.marketdata._bookrow",
    .m_doc = "One BOOK_V1 row from a decoded depth push, in C.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__bookrow(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyObject *layout = Py_BuildValue(
        "{s:i,s:(iiiiiiiiiii),s:i,s:I}", "size", BOOK_SIZE, "offsets", BOOK_EVENT, BOOK_RECV,
        BOOK_PUB, BOOK_SYMBOL, BOOK_FLAGS, BOOK_NBIDS, BOOK_NASKS, BOOK_BID_PX, BOOK_BID_QTY,
        BOOK_ASK_PX, BOOK_ASK_QTY, "depth", DEPTH, "flag_crossed", FLAG_CROSSED);
    if (layout == NULL || PyModule_AddObject(m, "LAYOUT", layout) < 0) {
        Py_XDECREF(layout);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
