/* fdatasync of one file on a POSIX thread that never takes the GIL (procs/trading/intent_log.py).
 *
 * The intent log's ``after_send`` mode syncs an intent's line right after its order leaves. A
 * Python thread doing that needs the GIL twice a sync (to wake, and to return from fdatasync),
 * and the busy hot-path thread then hands it over: at 1,000 msg/s colocated, tick-to-order p99
 * went from ~1.0 to ~2.9 ms with one (docs/benchmarks.md, "The intent's sync after the send").
 * Here ``request`` only locks a mutex and signals a condition; the thread sleeps in the kernel.
 *
 *   Syncer(fd)            starts the thread (it inherits the process's CPU set and class)
 *   .request()            one more line to sync: the next sync covers it
 *   .wait(timeout_s)      True once every request so far is covered by a sync that succeeded;
 *                         False at the timeout, or once a sync failed (``error``); releases the GIL
 *   .stop()               the last sync done, the thread joined (before the fd is closed)
 *   .error                errno of the first failed sync (0: none); sticky
 *   .drain()              the windows (ns) of the syncs since the last drain: the oldest
 *                         request a sync covered, made → the sync returned; at most LAGS_MAX
 *
 * The fd stays the caller's: it must outlive the thread (``stop`` before ``os.close``).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LAGS_MAX 4096

typedef struct {
    PyObject_HEAD
    int fd;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t asked_cv; /* the thread waits on it for work */
    pthread_cond_t done_cv;  /* ``wait`` waits on it for a sync to finish */
    uint64_t asked, done;    /* requests made; requests a finished sync covered */
    int64_t first_ns;        /* when the oldest request no sync has begun for was made; 0: none */
    int err;                 /* errno of the first failed sync */
    int stopping, running, inited;
    int64_t lags[LAGS_MAX];
    int nlags;
} Syncer;

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *
run(void *arg)
{
    Syncer *s = (Syncer *)arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->asked == s->done && !s->stopping)
            pthread_cond_wait(&s->asked_cv, &s->mu);
        if (s->asked == s->done)
            break; /* stopping, nothing left */
        uint64_t target = s->asked;
        int64_t first = s->first_ns;
        s->first_ns = 0; /* requests from now on: the next sync's */
        pthread_mutex_unlock(&s->mu);
        int rc = fdatasync(s->fd);
        int e = rc == 0 ? 0 : errno;
        int64_t end = now_ns();
        pthread_mutex_lock(&s->mu);
        if (e) {
            if (!s->err)
                s->err = e;
        }
        else if (s->nlags < LAGS_MAX) {
            s->lags[s->nlags++] = end - first;
        }
        s->done = target;
        pthread_cond_broadcast(&s->done_cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int
Syncer_init(Syncer *s, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"fd", NULL};
    int fd;
    if (s->inited) {
        PyErr_SetString(PyExc_RuntimeError, "Syncer already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i", kw, &fd))
        return -1;
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "fd must be an open file descriptor");
        return -1;
    }
    s->fd = fd;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* ``wait``'s deadline */
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->asked_cv, NULL);
    pthread_cond_init(&s->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    s->inited = 1;
    int rc = pthread_create(&s->thread, NULL, run, s);
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    s->running = 1;
    return 0;
}

static PyObject *
Syncer_request(Syncer *s, PyObject *unused)
{
    if (!s->running) {
        PyErr_SetString(PyExc_RuntimeError, "Syncer is stopped");
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    if (!s->first_ns)
        s->first_ns = now_ns();
    s->asked++;
    pthread_cond_signal(&s->asked_cv);
    pthread_mutex_unlock(&s->mu);
    Py_RETURN_NONE;
}

static PyObject *
Syncer_wait(Syncer *s, PyObject *arg)
{
    double timeout_s = PyFloat_AsDouble(arg);
    if (timeout_s == -1.0 && PyErr_Occurred())
        return NULL;
    if (!s->inited)
        Py_RETURN_TRUE;
    int covered;
    Py_BEGIN_ALLOW_THREADS
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t add = (int64_t)(timeout_s > 0 ? timeout_s * 1e9 : 0);
    until.tv_sec += add / 1000000000;
    until.tv_nsec += add % 1000000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec += 1;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->mu);
    while (s->done != s->asked && s->running) {
        if (pthread_cond_timedwait(&s->done_cv, &s->mu, &until) == ETIMEDOUT)
            break;
    }
    covered = s->done == s->asked && !s->err; /* a failed sync covered nothing */
    pthread_mutex_unlock(&s->mu);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(covered);
}

static void
stop(Syncer *s)
{
    if (!s->running)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_signal(&s->asked_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->running = 0;
}

static PyObject *
Syncer_stop(Syncer *s, PyObject *unused)
{
    Py_BEGIN_ALLOW_THREADS
    stop(s);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *
Syncer_drain(Syncer *s, PyObject *unused)
{
    int64_t got[LAGS_MAX];
    int n = 0;
    if (s->inited) {
        pthread_mutex_lock(&s->mu);
        n = s->nlags;
        memcpy(got, s->lags, (size_t)n * sizeof(int64_t));
        s->nlags = 0;
        pthread_mutex_unlock(&s->mu);
    }
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLongLong(got[i]);
        if (v == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, v);
    }
    return out;
}

static PyObject *
Syncer_get_error(Syncer *s, void *closure)
{
    int e = 0;
    if (s->inited) {
        pthread_mutex_lock(&s->mu);
        e = s->err;
        pthread_mutex_unlock(&s->mu);
    }
    return PyLong_FromLong(e);
}

static void
Syncer_dealloc(Syncer *s)
{
    if (s->inited) {
        stop(s);
        pthread_cond_destroy(&s->asked_cv);
        pthread_cond_destroy(&s->done_cv);
        pthread_mutex_destroy(&s->mu);
    }
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyMethodDef Syncer_methods[] = {
    {"request", (PyCFunction)Syncer_request, METH_NOARGS, "one more line to sync"},
    {"wait", (PyCFunction)Syncer_wait, METH_O, "True once every request so far is synced (False: timeout or a failed sync)"},
    {"stop", (PyCFunction)Syncer_stop, METH_NOARGS, "the last sync done, the thread joined"},
    {"drain", (PyCFunction)Syncer_drain, METH_NOARGS, "the sync windows (ns) since the last"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Syncer_getset[] = {
    {"error", (getter)Syncer_get_error, NULL, "errno of the first failed sync (0: none)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SyncerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procs.trading._syncer.Syncer",
    .tp_basicsize = sizeof(Syncer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "fdatasync of one file on a thread of its own, without the GIL",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Syncer_init,
    .tp_dealloc = (destructor)Syncer_dealloc,
    .tp_methods = Syncer_methods,
    .tp_getset = Syncer_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "procs.trading._syncer",
    .m_doc = "fdatasync of one file on a POSIX thread that never takes the GIL",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__syncer(void)
{
    if (PyType_Ready(&SyncerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&SyncerType);
    if (PyModule_AddObject(m, "Syncer", (PyObject *)&SyncerType) < 0) {
        Py_DECREF(&SyncerType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "LAGS_MAX", LAGS_MAX);
    return m;
}
