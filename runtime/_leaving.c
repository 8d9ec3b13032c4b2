/* The exit of a transaction block, written where no Ctrl-C can land.
 *
 * CPython raises a KeyboardInterrupt where it checks for signals: where a Python function
 * starts, and after each call. A `with space.transact():` block's __exit__ written in Python
 * could be interrupted at its very first instruction, before any of its code ran: the block's
 * transaction then stayed current in the thread, and every later write joined it and was never
 * committed. This __exit__ is C: it runs no bytecode of its own, and it makes its calls into
 * the Python methods of the scope (`_leaving`, `_end`, `_ended_anyway`, see runtime/_tx.py)
 * again when one of them is interrupted, so that the block is always ended -- rolled back when
 * the interrupt came before it was -- and the interrupt is raised after that.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* How many times one call is made again while interrupts keep coming. */
#define TRIES 32

static PyObject *s_leaving, *s_end, *s_ended_anyway, *s_expected;

typedef struct {
    PyObject *type, *value, *tb;
} Kept;

static void keep(Kept *kept) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (kept->type == NULL) {
        kept->type = type;
        kept->value = value;
        kept->tb = tb;
    } else { /* one interrupt is reported: the first */
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
    }
}

static PyObject *raise_kept(Kept *kept) {
    PyErr_Restore(kept->type, kept->value, kept->tb);
    return NULL;
}

static PyObject *call(PyObject *self, PyObject *name, PyObject *arg1, PyObject *arg2) {
    PyObject *args[3] = {self, arg1, arg2};
    size_t n = arg1 == NULL ? 1 : (arg2 == NULL ? 2 : 3);
    return PyObject_VectorcallMethod(name, args, n, NULL);
}

/* self.name(arg1) made again while it raises (up to TRIES times), what it raised kept. */
static PyObject *call_through(PyObject *self, PyObject *name, PyObject *arg1, Kept *kept) {
    for (int i = 0; i < TRIES; i++) {
        PyObject *result = call(self, name, arg1, NULL);
        if (result != NULL) return result;
        keep(kept);
    }
    return NULL;
}

static PyObject *leaving_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "__exit__ takes three arguments");
        return NULL;
    }
    Kept kept = {NULL, NULL, NULL};
    PyObject *entry = call_through(self, s_leaving, NULL, &kept);
    if (entry == NULL) return raise_kept(&kept);
    if (entry == Py_None) {
        Py_DECREF(entry);
        if (kept.type != NULL) return raise_kept(&kept);
        Py_RETURN_NONE;
    }
    /* Interrupted while it was being found: the block fails, as if it had raised. */
    PyObject *failed = (args[0] != Py_None || kept.type != NULL) ? Py_True : Py_False;
    PyObject *result = call(self, s_end, entry, failed);
    if (result != NULL) {
        Py_DECREF(entry);
        if (kept.type != NULL) {
            Py_DECREF(result);
            return raise_kept(&kept);
        }
        return result;
    }
    Kept ended = {NULL, NULL, NULL};
    keep(&ended);
    PyErr_NormalizeException(&ended.type, &ended.value, &ended.tb);
    int expected = 0;
    PyObject *classes = PyObject_GetAttr(self, s_expected);
    if (classes != NULL && ended.value != NULL) {
        expected = PyObject_IsInstance(ended.value, classes);
    }
    Py_XDECREF(classes);
    if (expected != 1) {
        PyErr_Clear();
        /* An interrupt (or an error of the runtime's own) wherever it landed in _end: the
         * block is ended all the same. What the cleanup itself raised goes. */
        Kept dropped = {NULL, NULL, NULL};
        PyObject *done = call_through(self, s_ended_anyway, entry, &dropped);
        Py_XDECREF(done);
        Py_XDECREF(dropped.type);
        Py_XDECREF(dropped.value);
        Py_XDECREF(dropped.tb);
        PyErr_Clear();
    }
    Py_DECREF(entry);
    if (kept.type != NULL) { /* the first interrupt, over what ending the block raised */
        Py_XDECREF(ended.type);
        Py_XDECREF(ended.value);
        Py_XDECREF(ended.tb);
        return raise_kept(&kept);
    }
    return raise_kept(&ended);
}

static PyMethodDef leaving_methods[] = {
    {"__exit__", (PyCFunction)(void (*)(void))leaving_exit, METH_FASTCALL,
     "End the block: commit, or roll back (see runtime/_tx.py)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LeavingType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sqlite_cells.runtime._leaving.Leaving",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A base whose __exit__ no Ctrl-C interrupts before the block is ended.",
    .tp_methods = leaving_methods,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_leaving", "The exit of a transaction block, in C.", -1, NULL,
};

PyMODINIT_FUNC PyInit__leaving(void) {
    s_leaving = PyUnicode_InternFromString("_leaving");
    s_end = PyUnicode_InternFromString("_end");
    s_ended_anyway = PyUnicode_InternFromString("_ended_anyway");
    s_expected = PyUnicode_InternFromString("_expected");
    if (!s_leaving || !s_end || !s_ended_anyway || !s_expected) return NULL;
    if (PyType_Ready(&LeavingType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&LeavingType);
    if (PyModule_AddObject(m, "Leaving", (PyObject *)&LeavingType) < 0) {
        Py_DECREF(&LeavingType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
