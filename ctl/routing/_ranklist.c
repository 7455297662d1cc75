/* A sorted list of agent ids for the routing engine's agent index (policies.py): one
 * contiguous array of (rank, id) entries, ordered by rank (a C 128-bit integer) and then
 * by id (code point order, as str compares).
 *
 * A Python list of int entries compares int objects scattered over the heap memory: each
 * step of a binary search fetches one, a cache miss, and an agent with room moves in all
 * of its lists (several binary searches) each time it frees up or takes a contact: that
 * was most of a routing decision at the end of a full bench.routing run. Here a search
 * reads the array and compares C integers; ids are compared only when ranks tie.
 * ranklist.py is the same list in Python (bisect on tuples), used when this module is
 * not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef __int128 Rank;

typedef struct {
    Rank rank;
    PyObject *id; /* an exact str: no references to follow, so no garbage collector support */
} Entry;

typedef struct {
    PyObject_HEAD
    Entry *items;
    Py_ssize_t size;
    Py_ssize_t capacity;
} RankList;

typedef struct {
    PyObject_HEAD
    RankList *list;
    Py_ssize_t next;
} RankListIter;

static PyTypeObject RankListType;
static PyTypeObject RankListIterType;

/* An int into a 128-bit rank: -1 with OverflowError if it does not fit. */
static int
to_rank(PyObject *value, Rank *rank)
{
    int overflow = 0;
    long long small = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (small == -1 && PyErr_Occurred())
        return -1;
    if (!overflow) {
        *rank = small;
        return 0;
    }
    unsigned char bytes[16];
    if (_PyLong_AsByteArray((PyLongObject *)value, bytes, 16, 1, 1) < 0)
        return -1;
    unsigned __int128 bits = 0;
    for (int i = 15; i >= 0; i--)
        bits = bits << 8 | bytes[i];
    *rank = (Rank)bits;
    return 0;
}

/* (rank, id) against entry: <0, 0, >0 (two str compare without error). */
static int
compare(Rank rank, PyObject *id, const Entry *entry)
{
    if (rank != entry->rank)
        return rank < entry->rank ? -1 : 1;
    if (id == entry->id)
        return 0;
    return PyUnicode_Compare(id, entry->id);
}

/* The first position whose entry is not less than (rank, id). */
static Py_ssize_t
bisect_left(RankList *self, Rank rank, PyObject *id)
{
    Py_ssize_t lo = 0, hi = self->size;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) >> 1;
        if (compare(rank, id, &self->items[mid]) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The arguments (rank, id): 0, or -1 with an exception. */
static int
parse(PyObject *const *args, Py_ssize_t nargs, Rank *rank, PyObject **id)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "takes 2 arguments: rank, id");
        return -1;
    }
    if (!PyLong_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "a rank is an int, an id a str");
        return -1;
    }
    *id = args[1];
    return to_rank(args[0], rank);
}

static PyObject *
add(RankList *self, PyObject *const *args, Py_ssize_t nargs)
{
    Rank rank;
    PyObject *id;
    if (parse(args, nargs, &rank, &id) < 0)
        return NULL;
    /* A str subclass could hold references (a cycle this list would hide): keep a str. */
    id = PyUnicode_CheckExact(id) ? Py_NewRef(id) : PyUnicode_FromObject(id);
    if (id == NULL)
        return NULL;
    if (self->size == self->capacity) {
        Py_ssize_t capacity = self->capacity ? self->capacity * 2 : 8;
        Entry *items = PyMem_Realloc(self->items, capacity * sizeof(Entry));
        if (items == NULL) {
            Py_DECREF(id);
            return PyErr_NoMemory();
        }
        self->items = items;
        self->capacity = capacity;
    }
    Py_ssize_t at = bisect_left(self, rank, id);
    memmove(&self->items[at + 1], &self->items[at], (self->size - at) * sizeof(Entry));
    self->items[at].rank = rank;
    self->items[at].id = id;
    self->size++;
    Py_RETURN_NONE;
}

static PyObject *
discard(RankList *self, PyObject *const *args, Py_ssize_t nargs)
{
    Rank rank;
    PyObject *id;
    if (parse(args, nargs, &rank, &id) < 0)
        return NULL;
    Py_ssize_t at = bisect_left(self, rank, id);
    if (at == self->size || compare(rank, id, &self->items[at]) != 0) {
        PyErr_SetString(PyExc_KeyError, "no such (rank, id) in the list");
        return NULL;
    }
    PyObject *gone = self->items[at].id;
    self->size--;
    memmove(&self->items[at], &self->items[at + 1], (self->size - at) * sizeof(Entry));
    Py_DECREF(gone);
    Py_RETURN_NONE;
}

static Py_ssize_t
length(RankList *self)
{
    return self->size;
}

static PyObject *
iterate(RankList *self)
{
    RankListIter *it = PyObject_New(RankListIter, &RankListIterType);
    if (it == NULL)
        return NULL;
    it->list = (RankList *)Py_NewRef(self);
    it->next = 0;
    return (PyObject *)it;
}

static void
dealloc(RankList *self)
{
    for (Py_ssize_t i = 0; i < self->size; i++)
        Py_DECREF(self->items[i].id);
    PyMem_Free(self->items);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Like a list's iterator: the next position each time, so a list changed meanwhile is
 * read where it stands (the engine does not change one while it walks it). */
static PyObject *
iter_next(RankListIter *it)
{
    RankList *list = it->list;
    if (it->next >= list->size)
        return NULL;
    return Py_NewRef(list->items[it->next++].id);
}

static void
iter_dealloc(RankListIter *it)
{
    Py_DECREF(it->list);
    PyObject_Free(it);
}

static PyMethodDef methods[] = {
    {"add", (PyCFunction)(void (*)(void))add, METH_FASTCALL,
     "add(rank, id): put the id in its place, by rank and then id"},
    {"discard", (PyCFunction)(void (*)(void))discard, METH_FASTCALL,
     "discard(rank, id): remove that entry (KeyError if it is not there)"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods as_sequence = {.sq_length = (lenfunc)length};

static PyTypeObject RankListType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ctl.routing._ranklist.RankList",
    .tp_doc = "Ids sorted by (rank, id), ranks as 128-bit integers (see ranklist.py).",
    .tp_basicsize = sizeof(RankList),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)dealloc,
    .tp_iter = (getiterfunc)iterate,
    .tp_methods = methods,
    .tp_as_sequence = &as_sequence,
};

static PyTypeObject RankListIterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ctl.routing._ranklist.RankListIterator",
    .tp_basicsize = sizeof(RankListIter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)iter_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)iter_next,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ranklist", "The agent index's sorted lists (see ranklist.py).",
    -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__ranklist(void)
{
    if (PyType_Ready(&RankListType) < 0 || PyType_Ready(&RankListIterType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "RankList", (PyObject *)&RankListType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
