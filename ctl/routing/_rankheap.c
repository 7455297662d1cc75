/* A min-heap of contacts for the routing engine's buckets (queues.py): one contiguous
 * array of (rank, order, contact) entries, the least order first.
 *
 * A heapq list of orders compares int objects scattered over the heap memory: a pop in a
 * bucket of thousands of contacts fetches two of them per level, each a cache miss, and
 * that was a tenth of a routing decision. Here a pop walks the array and compares ranks
 * (queues.rank_of) as C integers; the orders themselves are compared only when ranks tie.
 * The contact comes with its entry, so the bucket needs no lookup by order to see whether
 * it is still there. rankheap.py is the same heap in Python (heapq), used when this module
 * is not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    long long rank;
    PyObject *order; /* an int */
    PyObject *item;  /* the contact (queues.Live), which refers to its bucket: a cycle */
} Entry;

typedef struct {
    PyObject_HEAD
    Entry *items;
    Py_ssize_t size;
    Py_ssize_t capacity;
} RankHeap;

/* a < b: -1 on error (an order comparison that raised). */
static int
less(const Entry *a, const Entry *b)
{
    if (a->rank != b->rank)
        return a->rank < b->rank;
    return PyObject_RichCompareBool(a->order, b->order, Py_LT);
}

/* heapq's _siftdown: the entry at pos moves up towards start while it is less. */
static int
sift_down(Entry *items, Py_ssize_t start, Py_ssize_t pos)
{
    Entry item = items[pos];
    while (pos > start) {
        Py_ssize_t parent = (pos - 1) >> 1;
        int lt = less(&item, &items[parent]);
        if (lt < 0) {
            items[pos] = item; /* every entry still held once, if out of place */
            return -1;
        }
        if (!lt)
            break;
        items[pos] = items[parent];
        pos = parent;
    }
    items[pos] = item;
    return 0;
}

/* heapq's _siftup: the hole at pos goes down to a leaf along the smaller children, then
 * the entry that was there moves up into place (fewer comparisons than stopping early). */
static int
sift_up(Entry *items, Py_ssize_t size, Py_ssize_t pos)
{
    Py_ssize_t start = pos, child = 2 * pos + 1;
    Entry item = items[pos];
    while (child < size) {
        Py_ssize_t right = child + 1;
        if (right < size) {
            int lt = less(&items[child], &items[right]);
            if (lt < 0) {
                items[pos] = item;
                return -1;
            }
            if (!lt)
                child = right;
        }
        items[pos] = items[child];
        pos = child;
        child = 2 * pos + 1;
    }
    items[pos] = item;
    return sift_down(items, start, pos);
}

static PyObject *
push(RankHeap *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "push(rank, order, item) takes 3 arguments");
        return NULL;
    }
    long long rank = PyLong_AsLongLong(args[0]);
    if (rank == -1 && PyErr_Occurred())
        return NULL;
    if (!PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "an order is an int");
        return NULL;
    }
    if (self->size == self->capacity) {
        Py_ssize_t capacity = self->capacity ? self->capacity * 2 : 8;
        Entry *items = PyMem_Realloc(self->items, capacity * sizeof(Entry));
        if (items == NULL)
            return PyErr_NoMemory();
        self->items = items;
        self->capacity = capacity;
    }
    self->items[self->size].rank = rank;
    self->items[self->size].order = Py_NewRef(args[1]);
    self->items[self->size].item = Py_NewRef(args[2]);
    self->size++;
    if (sift_down(self->items, 0, self->size - 1) < 0)
        return NULL; /* the entry is in the array, maybe out of place: as heapq leaves it */
    Py_RETURN_NONE;
}

static PyObject *
peek(RankHeap *self, PyObject *Py_UNUSED(ignored))
{
    if (self->size == 0)
        Py_RETURN_NONE;
    return Py_NewRef(self->items[0].item);
}

static PyObject *
pop(RankHeap *self, PyObject *Py_UNUSED(ignored))
{
    if (self->size == 0) {
        PyErr_SetString(PyExc_IndexError, "pop from an empty heap");
        return NULL;
    }
    Entry top = self->items[0];
    self->size--;
    if (self->size > 0) {
        self->items[0] = self->items[self->size];
        if (sift_up(self->items, self->size, 0) < 0) {
            Py_DECREF(top.order);
            Py_DECREF(top.item);
            return NULL;
        }
    }
    Py_DECREF(top.order);
    return top.item; /* its reference passes to the caller */
}

static PyObject *
orders(RankHeap *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *list = PyList_New(self->size);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < self->size; i++)
        PyList_SET_ITEM(list, i, Py_NewRef(self->items[i].order));
    return list;
}

static PyObject *
items(RankHeap *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *list = PyList_New(self->size);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < self->size; i++)
        PyList_SET_ITEM(list, i, Py_NewRef(self->items[i].item));
    return list;
}

static Py_ssize_t
length(RankHeap *self)
{
    return self->size;
}

static int
traverse(RankHeap *self, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < self->size; i++)
        Py_VISIT(self->items[i].item);
    return 0;
}

static int
clear(RankHeap *self)
{
    Entry *items = self->items;
    Py_ssize_t size = self->size;
    self->items = NULL;
    self->size = self->capacity = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        Py_DECREF(items[i].order);
        Py_DECREF(items[i].item);
    }
    PyMem_Free(items);
    return 0;
}

static void
dealloc(RankHeap *self)
{
    PyObject_GC_UnTrack(self);
    clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef methods[] = {
    {"push", (PyCFunction)(void (*)(void))push, METH_FASTCALL,
     "push(rank, order, item): add an item under its order and the order's rank"},
    {"peek", (PyCFunction)peek, METH_NOARGS, "the item of the least order, or None"},
    {"pop", (PyCFunction)pop, METH_NOARGS, "remove the least order's entry, return its item"},
    {"orders", (PyCFunction)orders, METH_NOARGS, "every order held, in no given order"},
    {"items", (PyCFunction)items, METH_NOARGS, "every item held, in no given order"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods as_sequence = {.sq_length = (lenfunc)length};

static PyTypeObject RankHeapType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ctl.routing._rankheap.RankHeap",
    .tp_doc = "A min-heap of items by order, compared by rank first (see rankheap.py).",
    .tp_basicsize = sizeof(RankHeap),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)dealloc,
    .tp_traverse = (traverseproc)traverse,
    .tp_clear = (inquiry)clear,
    .tp_methods = methods,
    .tp_as_sequence = &as_sequence,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rankheap", "The routing buckets' heap (see rankheap.py).", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__rankheap(void)
{
    if (PyType_Ready(&RankHeapType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "RankHeap", (PyObject *)&RankHeapType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
