/* The ring's per-call hot path in C: publish, poll and poll_into (shm/ring.py wraps these).
 *
 * Python's per-call cost (~450 ns a publish, ~440 ns a poll hit) was most of a ring hop's
 * one-way latency; here a call costs one vectorcall plus the copies. The protocol is exactly the
 * one docs/rings.md argues, with the orderings written as C11 atomics (plain movs on x86-64):
 *
 *   writer: claimed = end (relaxed); release fence; copy payload; published = end (release)
 *   reader: p = published (acquire); copy; acquire fence; c = claimed (relaxed);
 *           records below c - capacity may be torn: discarded and counted as dropped
 *
 * The payload copies race with the writer by design (a seqlock): a torn copy is detected by the
 * claimed re-read and never returned. Header parsing, validation errors, segment lifecycle and
 * writer-restart detection stay in Python; these types are the bases of RingWriter/RingReader.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

typedef struct {
    PyObject_HEAD
    Py_buffer map;          /* the segment's mapping; map.obj == NULL when unbound */
    char *slots;
    int64_t *claimed;
    int64_t *published;
    int64_t capacity, mask, itemsize;
    PyObject *dtype;        /* the ring's numpy dtype */
} Core;

typedef struct {
    Core c;
    int64_t next_seq;
} Writer;

typedef struct {
    Core c;
    int64_t cursor;
    int64_t dropped_total;
    int64_t next_check_ns;
    int64_t check_every_ns;
    PyObject *ndarray;      /* numpy.ndarray, called to wrap a bytearray as records */
    PyObject *empty;        /* the 0-record result */
    PyObject *spare;        /* the next 1-record result, made while idle */
    char *spare_data;
    PyObject *into;         /* the caller's poll_into buffer, as last bound */
    Py_buffer into_view;
    int64_t into_records;
} Reader;

static PyObject *str_dtype, *str_publish_slow, *str_check_writer, *str_check_into;

static inline int64_t
monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ------------------------------------------------------------------------------ binding */

static void
core_unbind(Core *c)
{
    if (c->map.obj != NULL)
        PyBuffer_Release(&c->map);
    c->map.obj = NULL;
    c->slots = NULL;
    c->claimed = c->published = NULL;
    c->capacity = c->mask = 0;
}

/* _core_bind(buf, header_bytes, claimed_at, published_at, capacity, dtype) */
static PyObject *
core_bind(Core *c, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "_core_bind takes 6 arguments");
        return NULL;
    }
    Py_ssize_t header = PyLong_AsSsize_t(args[1]);
    Py_ssize_t claimed_at = PyLong_AsSsize_t(args[2]);
    Py_ssize_t published_at = PyLong_AsSsize_t(args[3]);
    Py_ssize_t capacity = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred())
        return NULL;
    PyObject *itemsize_o = PyObject_GetAttrString(args[5], "itemsize");
    if (itemsize_o == NULL)
        return NULL;
    Py_ssize_t itemsize = PyLong_AsSsize_t(itemsize_o);
    Py_DECREF(itemsize_o);
    if (itemsize <= 0 || capacity <= 0 || (capacity & (capacity - 1)) || claimed_at % 8
        || published_at % 8 || claimed_at + 8 > header || published_at + 8 > header) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "bad ring layout");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0)
        return NULL;
    if (view.len < header + capacity * itemsize || ((uintptr_t)view.buf & 7)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "ring mapping too small or misaligned");
        return NULL;
    }
    core_unbind(c);
    c->map = view;
    char *base = (char *)view.buf;
    c->claimed = (int64_t *)(base + claimed_at);
    c->published = (int64_t *)(base + published_at);
    c->slots = base + header;
    c->capacity = capacity;
    c->mask = capacity - 1;
    c->itemsize = itemsize;
    Py_INCREF(args[5]);
    Py_XSETREF(c->dtype, args[5]);
    Py_RETURN_NONE;
}

static PyObject *
core_unbind_py(Core *c, PyObject *Py_UNUSED(ignored))
{
    core_unbind(c);
    Py_RETURN_NONE;
}

static int
core_not_bound(Core *c)
{
    if (c->map.obj != NULL)
        return 0;
    PyErr_SetString(PyExc_ValueError, "ring is closed");
    return 1;
}

/* Copy records [start, end) out of the slots into dst (one or two memcpy: the ring wraps). */
static inline void
copy_out(Core *c, char *dst, int64_t start, int64_t end)
{
    int64_t a = start & c->mask, n = end - start;
    int64_t first = c->capacity - a < n ? c->capacity - a : n;
    memcpy(dst, c->slots + a * c->itemsize, (size_t)(first * c->itemsize));
    if (n > first)
        memcpy(dst + first * c->itemsize, c->slots, (size_t)((n - first) * c->itemsize));
}

/* ------------------------------------------------------------------------------- writer */

static PyObject *
writer_publish(Writer *self, PyObject *records)
{
    Core *c = &self->c;
    PyObject *dt = PyObject_GetAttr(records, str_dtype);
    if (dt == NULL)
        goto slow;
    int same = dt == c->dtype;
    if (!same && c->dtype != NULL)
        same = PyObject_RichCompareBool(dt, c->dtype, Py_EQ) == 1;
    Py_DECREF(dt);
    if (!same || c->map.obj == NULL)
        goto slow;
    Py_buffer v;
    if (PyObject_GetBuffer(records, &v, PyBUF_C_CONTIGUOUS) < 0)
        goto slow;
    int64_t n = v.ndim == 1 ? (int64_t)v.shape[0] : -1;
    if (n <= 0 || n > c->capacity || v.len != n * c->itemsize) {
        PyBuffer_Release(&v);
        goto slow; /* empty, too big, not 1-d: Python raises or answers */
    }
    int64_t start = self->next_seq, end = start + n;
    int64_t a = start & c->mask;
    int64_t first = c->capacity - a < n ? c->capacity - a : n;
    __atomic_store_n(c->claimed, end, __ATOMIC_RELAXED); /* 1. announce the slots */
    __atomic_thread_fence(__ATOMIC_RELEASE);              /*    before any payload store */
    memcpy(c->slots + a * c->itemsize, v.buf, (size_t)(first * c->itemsize)); /* 2. payload */
    if (n > first)
        memcpy(c->slots, (char *)v.buf + first * c->itemsize, (size_t)((n - first) * c->itemsize));
    __atomic_store_n(c->published, end, __ATOMIC_RELEASE); /* 3. make them visible */
    self->next_seq = end;
    PyBuffer_Release(&v);
    return PyLong_FromLongLong(end);
slow:
    PyErr_Clear();
    return PyObject_CallMethodOneArg((PyObject *)self, str_publish_slow, records);
}

/* ------------------------------------------------------------------------------- reader */

/* Records [start, end) were copied; re-read claimed and settle which of them are untorn.
   Returns the index of the first good record; updates cursor and dropped_total. */
static inline int64_t
settle(Reader *r, int64_t start, int64_t end, int64_t cursor)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE); /* the copy's loads before the claimed load */
    int64_t oldest = __atomic_load_n(r->c.claimed, __ATOMIC_RELAXED) - r->c.capacity;
    int64_t first = oldest < end ? oldest : end;
    if (first < start)
        first = start;
    int64_t next = end > oldest ? end : oldest;
    r->dropped_total += next - cursor - (end - first);
    r->cursor = next;
    return first;
}

static int
reader_idle(Reader *r)
{
    if (r->spare == NULL && r->c.dtype != NULL) {
        PyObject *data = PyByteArray_FromStringAndSize(NULL, r->c.itemsize);
        if (data == NULL)
            return -1;
        PyObject *arr = PyObject_CallFunction(r->ndarray, "(n)OO", (Py_ssize_t)1, r->c.dtype, data);
        if (arr == NULL) {
            Py_DECREF(data);
            return -1;
        }
        r->spare_data = PyByteArray_AS_STRING(data); /* kept alive (and unresizable) by arr */
        Py_DECREF(data);
        r->spare = arr;
    }
    if (monotonic_ns() >= r->next_check_ns) {
        r->next_check_ns = monotonic_ns() + r->check_every_ns;
        PyObject *res = PyObject_CallMethodNoArgs((PyObject *)r, str_check_writer);
        if (res == NULL)
            return -1;
        Py_DECREF(res);
    }
    return 0;
}

static PyObject *
wrap_records(Reader *r, PyObject *data, int64_t skip, int64_t n)
{
    PyObject *res = PyObject_CallFunction(r->ndarray, "(L)OOL", (long long)n, r->c.dtype, data,
                                          (long long)(skip * r->c.itemsize));
    Py_DECREF(data);
    return res;
}

static PyObject *
reader_poll(Reader *r, PyObject *arg)
{
    Core *c = &r->c;
    int64_t max_records = PyLong_AsLongLong(arg);
    if (max_records == -1 && PyErr_Occurred())
        return NULL;
    if (core_not_bound(c))
        return NULL;
    int64_t cursor = r->cursor;
    int64_t published = __atomic_load_n(c->published, __ATOMIC_ACQUIRE); /* 1. what is done */
    if (published == cursor) {
        if (reader_idle(r) < 0)
            return NULL;
        return Py_NewRef(r->empty);
    }
    if (max_records < 1)
        return PyErr_Format(PyExc_ValueError, "max_records must be >= 1, was %lld",
                            (long long)max_records);
    int64_t start = published - c->capacity > cursor ? published - c->capacity : cursor;
    int64_t end = start + max_records < published ? start + max_records : published;
    if (end - start == 1 && r->spare != NULL) {
        copy_out(c, r->spare_data, start, end); /* 2. copy: into the result made while idle */
        int64_t first = settle(r, start, end, cursor); /* 3. torn? */
        if (first == start) {
            PyObject *res = r->spare;
            r->spare = NULL; /* handed out: never written again */
            return res;
        }
        return Py_NewRef(r->empty);
    }
    PyObject *data = PyByteArray_FromStringAndSize(NULL, (end - start) * c->itemsize);
    if (data == NULL)
        return NULL;
    copy_out(c, PyByteArray_AS_STRING(data), start, end); /* 2. copy */
    int64_t first = settle(r, start, end, cursor);        /* 3. torn? */
    if (first == end) {
        Py_DECREF(data);
        return Py_NewRef(r->empty);
    }
    return wrap_records(r, data, first - start, end - first);
}

static int
bind_into(Reader *r, PyObject *out)
{
    PyObject *ok = PyObject_CallMethodOneArg((PyObject *)r, str_check_into, out);
    if (ok == NULL)
        return -1;
    Py_DECREF(ok);
    Py_buffer v;
    if (PyObject_GetBuffer(out, &v, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (v.len < r->c.itemsize) {
        PyBuffer_Release(&v);
        PyErr_SetString(PyExc_ValueError, "poll_into needs a non-empty array");
        return -1;
    }
    if (r->into != NULL) {
        PyBuffer_Release(&r->into_view);
        Py_CLEAR(r->into);
    }
    r->into_view = v;
    r->into_records = v.len / r->c.itemsize;
    r->into = Py_NewRef(out);
    return 0;
}

static PyObject *
reader_poll_into(Reader *r, PyObject *out)
{
    Core *c = &r->c;
    if (core_not_bound(c))
        return NULL;
    if (out != r->into && bind_into(r, out) < 0)
        return NULL;
    int64_t cursor = r->cursor;
    int64_t published = __atomic_load_n(c->published, __ATOMIC_ACQUIRE); /* 1. what is done */
    if (published == cursor) {
        if (reader_idle(r) < 0)
            return NULL;
        return PyLong_FromLong(0);
    }
    int64_t start = published - c->capacity > cursor ? published - c->capacity : cursor;
    int64_t end = start + r->into_records < published ? start + r->into_records : published;
    char *dst = (char *)r->into_view.buf;
    copy_out(c, dst, start, end);                  /* 2. copy */
    int64_t first = settle(r, start, end, cursor); /* 3. torn? */
    if (first > start) /* move the untorn tail to the front */
        memmove(dst, dst + (first - start) * c->itemsize, (size_t)((end - first) * c->itemsize));
    return PyLong_FromLongLong(end - first);
}

static void
reader_release_into(Reader *r)
{
    if (r->into != NULL) {
        PyBuffer_Release(&r->into_view);
        Py_CLEAR(r->into);
    }
    r->into_records = 0;
}

static PyObject *
reader_unbind(Reader *r, PyObject *Py_UNUSED(ignored))
{
    reader_release_into(r);
    Py_CLEAR(r->spare);
    core_unbind(&r->c);
    Py_RETURN_NONE;
}

static PyObject *
reader_bind(Reader *r, PyObject *const *args, Py_ssize_t nargs)
{
    /* a new mapping (attach or reattach): results made for the old one are dropped */
    PyObject *res = core_bind(&r->c, args, nargs);
    if (res != NULL) {
        Py_CLEAR(r->spare);
        reader_release_into(r);
    }
    return res;
}

static PyObject *
reader_set_types(Reader *r, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "_core_types(ndarray, empty, check_every_ns)");
        return NULL;
    }
    Py_XSETREF(r->ndarray, Py_NewRef(args[0]));
    Py_XSETREF(r->empty, Py_NewRef(args[1]));
    r->check_every_ns = PyLong_AsLongLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
reader_lag(Reader *r, void *Py_UNUSED(closure))
{
    if (core_not_bound(&r->c))
        return NULL;
    return PyLong_FromLongLong(__atomic_load_n(r->c.published, __ATOMIC_ACQUIRE) - r->cursor);
}

static PyObject *
core_published(Core *c, void *Py_UNUSED(closure))
{
    if (core_not_bound(c))
        return NULL;
    return PyLong_FromLongLong(__atomic_load_n(c->published, __ATOMIC_ACQUIRE));
}

/* ------------------------------------------------------------------------------ GC, types */

static int
writer_traverse(Writer *self, visitproc visit, void *arg)
{
    Py_VISIT(self->c.dtype);
    Py_VISIT(self->c.map.obj);
    return 0;
}

static int
writer_clear(Writer *self)
{
    core_unbind(&self->c);
    Py_CLEAR(self->c.dtype);
    return 0;
}

static void
writer_dealloc(Writer *self)
{
    PyObject_GC_UnTrack(self);
    writer_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
reader_traverse(Reader *r, visitproc visit, void *arg)
{
    Py_VISIT(r->c.dtype);
    Py_VISIT(r->c.map.obj);
    Py_VISIT(r->ndarray);
    Py_VISIT(r->empty);
    Py_VISIT(r->spare);
    Py_VISIT(r->into);
    return 0;
}

static int
reader_clear(Reader *r)
{
    reader_release_into(r);
    core_unbind(&r->c);
    Py_CLEAR(r->c.dtype);
    Py_CLEAR(r->ndarray);
    Py_CLEAR(r->empty);
    Py_CLEAR(r->spare);
    return 0;
}

static void
reader_dealloc(Reader *r)
{
    PyObject_GC_UnTrack(r);
    reader_clear(r);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

#include <structmember.h>

static PyMemberDef writer_members[] = {
    {"next_seq", T_LONGLONG, offsetof(Writer, next_seq), READONLY,
     "the sequence number the next published record will get"},
    {NULL},
};

static PyMethodDef writer_methods[] = {
    {"publish", (PyCFunction)writer_publish, METH_O,
     "publish(records) -> int: append records; return the sequence one past the last"},
    {"_core_bind", (PyCFunction)(void (*)(void))core_bind, METH_FASTCALL, NULL},
    {"_core_unbind", (PyCFunction)core_unbind_py, METH_NOARGS, NULL},
    {NULL},
};

static PyGetSetDef writer_getset[] = {
    {"_published", (getter)core_published, NULL, NULL, NULL},
    {NULL},
};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "shm._ringc.WriterCore",
    .tp_basicsize = sizeof(Writer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The ring writer's hot path (base of shm.ring.RingWriter).",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)writer_dealloc,
    .tp_traverse = (traverseproc)writer_traverse,
    .tp_clear = (inquiry)writer_clear,
    .tp_methods = writer_methods,
    .tp_members = writer_members,
    .tp_getset = writer_getset,
};

static PyMemberDef reader_members[] = {
    {"_cursor", T_LONGLONG, offsetof(Reader, cursor), 0, NULL},
    {"dropped_total", T_LONGLONG, offsetof(Reader, dropped_total), 0,
     "records this reader lost to lapping or tearing"},
    {"_next_check_ns", T_LONGLONG, offsetof(Reader, next_check_ns), 0, NULL},
    {NULL},
};

static PyMethodDef reader_methods[] = {
    {"poll", (PyCFunction)reader_poll, METH_O,
     "poll(max_records) -> records: copy out up to max_records unseen records, oldest first"},
    {"poll_into", (PyCFunction)reader_poll_into, METH_O,
     "poll_into(out) -> int: copy up to len(out) unseen records into out[:n]"},
    {"_core_bind", (PyCFunction)(void (*)(void))reader_bind, METH_FASTCALL, NULL},
    {"_core_unbind", (PyCFunction)reader_unbind, METH_NOARGS, NULL},
    {"_core_types", (PyCFunction)(void (*)(void))reader_set_types, METH_FASTCALL, NULL},
    {NULL},
};

static PyGetSetDef reader_getset[] = {
    {"lag_records", (getter)reader_lag, NULL,
     "published - cursor: records published but not yet read (or lost)", NULL},
    {"_published", (getter)core_published, NULL, NULL, NULL},
    {NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "shm._ringc.ReaderCore",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The ring reader's hot path (base of shm.ring.RingReader).",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_traverse = (traverseproc)reader_traverse,
    .tp_clear = (inquiry)reader_clear,
    .tp_methods = reader_methods,
    .tp_members = reader_members,
    .tp_getset = reader_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "shm._ringc",
    .m_doc = "The ring's per-call hot path (publish, poll, poll_into) in C.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__ringc(void)
{
    if (PyType_Ready(&WriterType) < 0 || PyType_Ready(&ReaderType) < 0)
        return NULL;
    str_dtype = PyUnicode_InternFromString("dtype");
    str_publish_slow = PyUnicode_InternFromString("_publish_slow");
    str_check_writer = PyUnicode_InternFromString("_check_writer");
    str_check_into = PyUnicode_InternFromString("_check_into");
    if (!str_dtype || !str_publish_slow || !str_check_writer || !str_check_into)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "WriterCore", (PyObject *)&WriterType) < 0
        || PyModule_AddObjectRef(m, "ReaderCore", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
