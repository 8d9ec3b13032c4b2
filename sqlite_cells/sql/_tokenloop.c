/* The lexer's pass over sqlglot's tokens (sql/_lexer.py, Lexer.build), in C.
 *
 * Every new statement's text goes through this loop once per token, and in Python it cost
 * about as much as sqlglot's own tokenizer (~9 us of the ~30 us a 100-character statement
 * takes at first sight). The common tokens -- ASCII words, operators, a bare "?", plain
 * numbers -- are made here; every other token is handed to the Lexer's own methods
 * (gap, joined, literal, word, number, parameter, fail, finish), which stay the one place for
 * what they check. The module docstring of sql/_lexer.py says what the pass checks and why.
 *
 * Tokens are (kind, key, start, end) tuples; the kinds are sql/_kinds.py's, exported here as
 * WORD, NUMBER, PARAM and OP so that a test pins that both agree.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* sql/_kinds.py: WORD, QUOTED, STRING, BLOB, NUMBER, PARAM, OP = range(7) */
#define KIND_WORD 0
#define KIND_QUOTED 1
#define KIND_STRING 2
#define KIND_NUMBER 4
#define KIND_PARAM 5
#define KIND_OP 6

static PyObject *s_start, *s_end, *s_token_type, *s_fail, *s_gap, *s_joined, *s_literal,
    *s_word, *s_number, *s_parameter, *s_finish, *s_semicolon, *s_dot, *s_comment, *s_tokens,
    *s_params_raw, *s_strings, *s_sql, *s_raw, *s_question, *s_empty;

static int is_ascii_letter(Py_UCS4 c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
static int is_ascii_digit(Py_UCS4 c) { return c >= '0' && c <= '9'; }
/* The first character of an ASCII word. */
static int is_word_start(Py_UCS4 c) { return is_ascii_letter(c) || c == '_'; }
/* SQLite's IdChar(): ASCII letters and digits, "_", "$" and every non-ASCII character. */
static int is_idchar(Py_UCS4 c) {
    return is_ascii_letter(c) || is_ascii_digit(c) || c == '_' || c == '$' || c >= 0x80;
}
/* Characters that are an operator alone. */
static int is_plain_operator(Py_UCS4 c) {
    return c != 0 && c < 0x80 && strchr("(),+-*/%=<>&|~", (int)c) != NULL;
}
/* Characters that start an operator (of one or more characters). */
static int is_operator_char(Py_UCS4 c) {
    return c != 0 && c < 0x80 && strchr("(),;.+-*/%=<>!&|~", (int)c) != NULL;
}

/* A raw token's start and end (one past its last character). */
static int token_span(PyObject *token, Py_ssize_t *start, Py_ssize_t *end) {
    PyObject *value = PyObject_GetAttr(token, s_start);
    if (value == NULL) return -1;
    *start = PyLong_AsSsize_t(value);
    Py_DECREF(value);
    if (*start == -1 && PyErr_Occurred()) return -1;
    value = PyObject_GetAttr(token, s_end);
    if (value == NULL) return -1;
    *end = PyLong_AsSsize_t(value);
    Py_DECREF(value);
    if (*end == -1 && PyErr_Occurred()) return -1;
    *end += 1;
    return 0;
}

/* Append (kind, key, start, end) to tokens; steals the reference to key. */
static int append_token(PyObject *tokens, int kind, PyObject *key, Py_ssize_t start,
                        Py_ssize_t end) {
    if (key == NULL) return -1;
    PyObject *item = PyTuple_New(4);
    if (item == NULL) {
        Py_DECREF(key);
        return -1;
    }
    PyTuple_SET_ITEM(item, 0, PyLong_FromLong(kind));
    PyTuple_SET_ITEM(item, 1, key);
    PyTuple_SET_ITEM(item, 2, PyLong_FromSsize_t(start));
    PyTuple_SET_ITEM(item, 3, PyLong_FromSsize_t(end));
    int failed = -1;
    if (PyTuple_GET_ITEM(item, 0) && PyTuple_GET_ITEM(item, 2) && PyTuple_GET_ITEM(item, 3))
        failed = PyList_Append(tokens, item);
    Py_DECREF(item);
    return failed;
}

/* Call lexer.<name>(args...) and drop the result; -1 on an exception. */
static int call_method(PyObject *lexer, PyObject *name, const char *format, ...) {
    va_list va;
    va_start(va, format);
    PyObject *args = Py_VaBuildValue(format, va);
    va_end(va);
    if (args == NULL) return -1;
    PyObject *method = PyObject_GetAttr(lexer, name);
    if (method == NULL) {
        Py_DECREF(args);
        return -1;
    }
    PyObject *result = PyObject_Call(method, args, NULL);
    Py_DECREF(method);
    Py_DECREF(args);
    if (result == NULL) return -1;
    Py_DECREF(result);
    return 0;
}

/* Call lexer.<name>(r) for a method that returns the next raw index (-1 on an exception). */
static Py_ssize_t call_next(PyObject *lexer, PyObject *name, Py_ssize_t r) {
    PyObject *index = PyLong_FromSsize_t(r);
    if (index == NULL) return -1;
    PyObject *result = PyObject_CallMethodOneArg(lexer, name, index);
    Py_DECREF(index);
    if (result == NULL) return -1;
    Py_ssize_t next = PyLong_AsSsize_t(result);
    Py_DECREF(result);
    return next;
}

/* The end of the last token made (where the pass goes on after a method made some). */
static int last_end(PyObject *tokens, Py_ssize_t *position) {
    Py_ssize_t size = PyList_GET_SIZE(tokens);
    if (size == 0) {
        PyErr_SetString(PyExc_RuntimeError, "the lexer made no token");
        return -1;
    }
    PyObject *end = PyTuple_GetItem(PyList_GET_ITEM(tokens, size - 1), 3);
    if (end == NULL) return -1;
    *position = PyLong_AsSsize_t(end);
    return (*position == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* Is sql[start:end] an ASCII identifier (letters, digits, "_"; its first is a word start)? */
static int ascii_identifier(int kind, const void *data, Py_ssize_t start, Py_ssize_t end) {
    for (Py_ssize_t i = start; i < end; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (!(is_ascii_letter(c) || is_ascii_digit(c) || c == '_')) return 0;
    }
    return end > start;
}

static PyObject *ascii_upper(int kind, const void *data, Py_ssize_t start, Py_ssize_t end) {
    PyObject *out = PyUnicode_New(end - start, 127);
    if (out == NULL) return NULL;
    Py_UCS1 *chars = PyUnicode_1BYTE_DATA(out);
    for (Py_ssize_t i = start; i < end; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        chars[i - start] = (Py_UCS1)((c >= 'a' && c <= 'z') ? c - 32 : c);
    }
    return out;
}

static int is_space_start(Py_UCS4 c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

/* Find `a` followed by `b` in sql[from:end]: the offset of `a`, or -1. */
static Py_ssize_t find_pair(int kind, const void *data, Py_ssize_t from, Py_ssize_t end,
                            Py_UCS4 a, Py_UCS4 b) {
    for (Py_ssize_t i = from; i + 1 < end; i++)
        if (PyUnicode_READ(kind, data, i) == a && PyUnicode_READ(kind, data, i + 1) == b)
            return i;
    return -1;
}

/* Whether sql[start:end] holds only what SQLite skips between tokens: runs of whitespace (a
 * run starts with a space, tab, newline, form feed or carriage return and goes on with those
 * or \v), "--" comments up to a newline (or the end of the text, when `at_end`) and closed
 * comments. Sets *comment when it holds a comment. 0 means "not sure": the Lexer's gap()
 * (or finish()) then reads the gap and says where SQLite reads it differently. */
static int clean_gap(int kind, const void *data, Py_ssize_t start, Py_ssize_t end, int at_end,
                     int *comment) {
    Py_ssize_t i = start;
    int seen = 0;
    while (i < end) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        Py_UCS4 next = i + 1 < end ? PyUnicode_READ(kind, data, i + 1) : 0;
        if (is_space_start(c)) {
            i++;
            while (i < end && (is_space_start(PyUnicode_READ(kind, data, i)) ||
                               PyUnicode_READ(kind, data, i) == '\v'))
                i++;
        } else if (c == '-' && next == '-') {
            seen = 1;
            Py_ssize_t j = i + 2;
            while (j < end && PyUnicode_READ(kind, data, j) != '\n') j++;
            if (j == end && !at_end) return 0;
            i = j;
        } else if (c == '/' && next == '*') {
            seen = 1;
            Py_ssize_t close = find_pair(kind, data, i + 2, end, '*', '/');
            if (close < 0) return 0;
            i = close + 2;
        } else {
            return 0;
        }
    }
    *comment |= seen;
    return 1;
}

/* The key of a string literal or quoted identifier sql[start:stop] whose extent is SQLite's:
 * it ends with the closing character of `first` and holds no other (inside '…', "…" and `…`
 * a doubled quote is one character of the text; inside […] there is no escape). The key is the
 * text inside, unescaped, ASCII letters upper-cased. Returns NULL with no exception set when
 * the extent is not SQLite's: the Lexer's literal() then says where. */
static PyObject *quoted_key(int kind, const void *data, Py_UCS4 first, Py_ssize_t start,
                            Py_ssize_t stop) {
    const Py_UCS4 closing = first == '[' ? ']' : first;
    if (stop - start < 2 || PyUnicode_READ(kind, data, stop - 1) != closing) return NULL;
    Py_ssize_t size = 0;
    Py_UCS4 widest = 0;
    for (Py_ssize_t i = start + 1; i < stop - 1; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == closing) {
            if (first == '[' || i + 1 >= stop - 1 || PyUnicode_READ(kind, data, i + 1) != closing)
                return NULL;
            i++; /* a doubled quote: one character */
        }
        if (c > widest) widest = c;
        size++;
    }
    PyObject *key = PyUnicode_New(size, widest);
    if (key == NULL) return NULL;
    const int key_kind = PyUnicode_KIND(key);
    void *key_data = PyUnicode_DATA(key);
    Py_ssize_t k = 0;
    for (Py_ssize_t i = start + 1; i < stop - 1; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == closing) i++;
        PyUnicode_WRITE(key_kind, key_data, k++, (c >= 'a' && c <= 'z') ? c - 32 : c);
    }
    return key;
}

/* sqlglot's one token for ASCII words split by single spaces ("ORDER BY", "GROUP BY") is one
 * word per part to SQLite. Appends them and returns 1; 0 when the text is not that (the
 * Lexer's word() reads it); -1 on an exception. */
static int spaced_words(PyObject *tokens, int kind, const void *data, Py_ssize_t start,
                        Py_ssize_t stop) {
    Py_ssize_t i = start;
    while (1) { /* check first: nothing is appended unless every part is a word */
        if (i >= stop || !is_word_start(PyUnicode_READ(kind, data, i))) return 0;
        Py_ssize_t j = i + 1;
        while (j < stop) {
            Py_UCS4 c = PyUnicode_READ(kind, data, j);
            if (!(is_ascii_letter(c) || is_ascii_digit(c) || c == '_')) break;
            j++;
        }
        if (j == stop) break;
        if (PyUnicode_READ(kind, data, j) != ' ') return 0;
        i = j + 1;
    }
    i = start;
    while (i < stop) {
        Py_ssize_t j = i;
        while (j < stop && PyUnicode_READ(kind, data, j) != ' ') j++;
        if (append_token(tokens, KIND_WORD, ascii_upper(kind, data, i, j), i, j) < 0) return -1;
        i = j + 1;
    }
    return 1;
}

/* Is sql[start:end] all ASCII digits (and not empty)? */
static int ascii_digits(int kind, const void *data, Py_ssize_t start, Py_ssize_t end) {
    for (Py_ssize_t i = start; i < end; i++)
        if (!is_ascii_digit(PyUnicode_READ(kind, data, i))) return 0;
    return end > start;
}

static int is_literal(PyObject *token, PyObject *literal_types) {
    PyObject *type = PyObject_GetAttr(token, s_token_type);
    if (type == NULL) return -1;
    int found = PySet_Contains(literal_types, type);
    Py_DECREF(type);
    return found;
}

/* lexer.<name>(token, first, start, end): literal() */
static int call_literal(PyObject *lexer, PyObject *token, Py_UCS4 first, Py_ssize_t start,
                        Py_ssize_t end) {
    PyObject *text = PyUnicode_FromOrdinal((int)first);
    if (text == NULL) return -1;
    int failed = call_method(lexer, s_literal, "(ONnn)", token, text, start, end);
    return failed;
}

/* build(lexer, failed, operators, literal_types): Lexer.build's pass (see sql/_lexer.py). */
static PyObject *build(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "build(lexer, failed, operators, literal_types)");
        return NULL;
    }
    PyObject *lexer = args[0], *failed = args[1], *operators = args[2], *literal_types = args[3];
    PyObject *sql = PyObject_GetAttr(lexer, s_sql);
    PyObject *raw = PyObject_GetAttr(lexer, s_raw);
    PyObject *tokens = PyObject_GetAttr(lexer, s_tokens);
    PyObject *params_raw = PyObject_GetAttr(lexer, s_params_raw);
    PyObject *strings = PyObject_GetAttr(lexer, s_strings);
    PyObject *result = NULL;
    if (sql == NULL || raw == NULL || tokens == NULL || params_raw == NULL || strings == NULL)
        goto done;
    if (!PyUnicode_Check(sql) || !PyList_Check(raw) || !PyList_Check(tokens) ||
        !PyList_Check(params_raw) || !PyList_Check(strings)) {
        PyErr_SetString(PyExc_TypeError, "a Lexer's sql is a str and its raw, tokens, "
                                         "params_raw and strings are lists");
        goto done;
    }
    const int kind = PyUnicode_KIND(sql);
    const void *data = PyUnicode_DATA(sql);
    const Py_ssize_t length = PyUnicode_GET_LENGTH(sql);
    const Py_ssize_t count = PyList_GET_SIZE(raw);
    Py_ssize_t position = 0, r = 0, semicolon = -1;
    int dot = 0, comment = 0; /* comment: a gap read here held a comment */
    while (r < count) {
        PyObject *token = PyList_GET_ITEM(raw, r);
        Py_ssize_t start, end;
        if (token_span(token, &start, &end) < 0) goto done;
        if (start < 0 || start >= length) { /* never expected: sqlglot's token is off the text */
            if (call_method(lexer, s_fail, "(n)", start < 0 ? 0 : length) < 0) goto done;
            break;
        }
        const Py_ssize_t stop = end < length ? end : length; /* what sql[start:end] reads */
        const Py_UCS4 first = PyUnicode_READ(kind, data, start);
        if (start != position) {
            if (start != position + 1 || PyUnicode_READ(kind, data, position) != ' ') {
                if (start < position) { /* never expected: sqlglot went back */
                    if (call_method(lexer, s_fail, "(n)", start) < 0) goto done;
                    break;
                }
                if (!clean_gap(kind, data, position, start, 0, &comment) &&
                    call_method(lexer, s_gap, "(nnO)", position, start, Py_False) < 0)
                    goto done;
            }
        } else if (r && start > 0 && is_idchar(first) && PyList_GET_SIZE(tokens)) {
            if (is_idchar(PyUnicode_READ(kind, data, start - 1))) {
                /* touching identifier characters: one token to SQLite */
                r = call_next(lexer, s_joined, r);
                if (r < 0 || last_end(tokens, &position) < 0) goto done;
                continue;
            }
        }
        /* A bare "?" (the common parameter): only digits right after it make SQLite's ?NNN. */
        int bare_question = first == '?' && end == start + 1;
        if (bare_question && r + 1 < count && end < length) {
            Py_ssize_t next_start, next_end;
            if (token_span(PyList_GET_ITEM(raw, r + 1), &next_start, &next_end) < 0) goto done;
            bare_question =
                next_start != end || !Py_UNICODE_ISDIGIT(PyUnicode_READ(kind, data, end));
        }
        if (is_word_start(first)) {
            if (ascii_identifier(kind, data, start, stop)) {
                PyObject *key = ascii_upper(kind, data, start, stop);
                if (append_token(tokens, KIND_WORD, key, start, end) < 0) goto done;
            } else {
                int literal = is_literal(token, literal_types), words = 0;
                if (literal < 0) goto done;
                if (!literal && (words = spaced_words(tokens, kind, data, start, stop)) < 0)
                    goto done;
                if (literal ? call_literal(lexer, token, first, start, end) < 0
                            : !words && call_method(lexer, s_word, "(nn)", start, end) < 0)
                    goto done;
            }
        } else if (is_plain_operator(first) && end == start + 1) {
            if (append_token(tokens, KIND_OP, PyUnicode_FromOrdinal((int)first), start, end) < 0)
                goto done;
        } else if (is_operator_char(first)) {
            if (first == '.' && end < length &&
                Py_UNICODE_ISDIGIT(PyUnicode_READ(kind, data, end)) && r + 1 < count) {
                /* ".5": sqlglot splits what SQLite reads as one number */
                Py_ssize_t ignored;
                r += 1;
                if (token_span(PyList_GET_ITEM(raw, r), &ignored, &end) < 0) goto done;
                if (call_method(lexer, s_number, "(nn)", start, end) < 0) goto done;
            } else {
                PyObject *text = end == start + 1 ? PyUnicode_FromOrdinal((int)first)
                                                  : PyUnicode_Substring(sql, start, end);
                if (text == NULL) goto done;
                int known = PySet_Contains(operators, text);
                if (known < 0) {
                    Py_DECREF(text);
                    goto done;
                }
                if (!known) {
                    if (call_method(lexer, s_fail, "(n)", start) < 0) {
                        Py_DECREF(text);
                        goto done;
                    }
                } else if (first == ';' && semicolon < 0) {
                    semicolon = PyList_GET_SIZE(tokens);
                } else if (first == '.') {
                    dot = 1;
                }
                if (append_token(tokens, KIND_OP, text, start, end) < 0) goto done;
            }
        } else if (bare_question) {
            PyObject *entry = Py_BuildValue("(nnn)", PyList_GET_SIZE(tokens), r, r);
            if (entry == NULL) goto done;
            int appended = PyList_Append(params_raw, entry);
            Py_DECREF(entry);
            if (appended < 0) goto done;
            Py_INCREF(s_question); /* append_token takes this reference, whatever happens */
            if (append_token(tokens, KIND_PARAM, s_question, start, end) < 0) goto done;
        } else if (is_ascii_digit(first) && ascii_digits(kind, data, start, stop)) {
            Py_INCREF(s_empty);
            if (append_token(tokens, KIND_NUMBER, s_empty, start, end) < 0) goto done;
        } else {
            int literal = 1;
            if (first != '\'' && first != '"' && first != '`' && first != '[') {
                literal = is_literal(token, literal_types);
                if (literal < 0) goto done;
            }
            PyObject *key = NULL;
            if (literal && first != '\'' && first != '"' && first != '`' && first != '[') {
                if (call_literal(lexer, token, first, start, end) < 0) goto done;
            } else if (literal && (key = quoted_key(kind, data, first, start, stop)) != NULL) {
                if (first == '\'') { /* a string literal: its index is noted */
                    PyObject *index = PyLong_FromSsize_t(PyList_GET_SIZE(tokens));
                    int noted = index == NULL ? -1 : PyList_Append(strings, index);
                    Py_XDECREF(index);
                    if (noted < 0) {
                        Py_DECREF(key);
                        goto done;
                    }
                }
                int quoted = first == '\'' ? KIND_STRING : KIND_QUOTED;
                if (append_token(tokens, quoted, key, start, end) < 0) goto done;
            } else if (literal) {
                if (PyErr_Occurred() || call_literal(lexer, token, first, start, end) < 0)
                    goto done;
            } else if (is_ascii_digit(first)) {
                if (call_method(lexer, s_number, "(nn)", start, end) < 0) goto done;
            } else if (first == '?' || first == ':' || first == '@' || first == '$') {
                r = call_next(lexer, s_parameter, r);
                if (r < 0 || last_end(tokens, &position) < 0) goto done;
                continue;
            } else if (first >= 0x80) {
                if (call_method(lexer, s_word, "(nn)", start, end) < 0) goto done;
            } else {
                if (call_method(lexer, s_fail, "(n)", start) < 0) goto done;
                PyObject *text = PyUnicode_Substring(sql, start, end);
                if (append_token(tokens, KIND_OP, text, start, end) < 0) goto done;
            }
        }
        position = end;
        r += 1;
    }
    if (semicolon >= 0) {
        PyObject *value = PyLong_FromSsize_t(semicolon);
        if (value == NULL) goto done;
        int set = PyObject_SetAttr(lexer, s_semicolon, value);
        Py_DECREF(value);
        if (set < 0) goto done;
    }
    if (dot && PyObject_SetAttr(lexer, s_dot, Py_True) < 0) goto done;
    int stopped = PyObject_IsTrue(failed); /* sqlglot failed: finish() says where */
    if (stopped < 0) goto done;
    if ((stopped || !clean_gap(kind, data, position, length, 1, &comment)) &&
        call_method(lexer, s_finish, "(nO)", position, failed) < 0)
        goto done;
    if (comment && PyObject_SetAttr(lexer, s_comment, Py_True) < 0) goto done;
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(sql);
    Py_XDECREF(raw);
    Py_XDECREF(tokens);
    Py_XDECREF(params_raw);
    Py_XDECREF(strings);
    return result;
}

static PyMethodDef methods[] = {
    {"build", (PyCFunction)(void (*)(void))build, METH_FASTCALL,
     "build(lexer, failed, operators, literal_types): the Lexer's pass over sqlglot's tokens."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_tokenloop", "The lexer's pass over sqlglot's tokens (sql/_lexer.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

#define INTERN(var, text)                                                                      \
    if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL

PyMODINIT_FUNC PyInit__tokenloop(void) {
    INTERN(s_start, "start");
    INTERN(s_end, "end");
    INTERN(s_token_type, "token_type");
    INTERN(s_fail, "fail");
    INTERN(s_gap, "gap");
    INTERN(s_joined, "joined");
    INTERN(s_literal, "literal");
    INTERN(s_word, "word");
    INTERN(s_number, "number");
    INTERN(s_parameter, "parameter");
    INTERN(s_finish, "finish");
    INTERN(s_semicolon, "semicolon");
    INTERN(s_dot, "dot");
    INTERN(s_comment, "comment");
    INTERN(s_tokens, "tokens");
    INTERN(s_params_raw, "params_raw");
    INTERN(s_strings, "strings");
    INTERN(s_sql, "sql");
    INTERN(s_raw, "raw");
    INTERN(s_question, "?");
    INTERN(s_empty, "");
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) return NULL;
    if (PyModule_AddIntConstant(module, "WORD", KIND_WORD) < 0 ||
        PyModule_AddIntConstant(module, "NUMBER", KIND_NUMBER) < 0 ||
        PyModule_AddIntConstant(module, "PARAM", KIND_PARAM) < 0 ||
        PyModule_AddIntConstant(module, "OP", KIND_OP) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
