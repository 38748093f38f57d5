/*
 * apishield._speedups: what runs on every request and is slow in Python, in C.
 *
 * plain_text(text, stops) -> bool
 *
 * True when text is ASCII and holds none of the (ASCII) characters of stops: the
 * test that spares decoding a value that no decoding step applies to. In Python it
 * is a method call and a search per character (apishield.normalize has that form,
 * for builds without this module).
 *
 * plain_texts(body, max_depth, max_params) -> list[str] | None
 *
 * A body is plain when it is valid JSON (RFC 8259, as orjson accepts it) whose
 * strings are printable-or-DEL ASCII without '%', '&' or a backslash: no escapes,
 * so every string is exactly the bytes between its quotes, and no decoding could
 * change it. For such a body within max_depth (nesting of objects and arrays) and
 * max_params (scalar values: strings, numbers, literals), the result is every key
 * and string, in document order, repeated keys included: the texts
 * apishield.parsers.body_inputs gives. Anything else, or anything this scanner is
 * unsure of, gives None, and the caller takes the general path, which decides.
 *
 * It replaces a parse that builds the whole tree (orjson.loads) and a walk over
 * it, for the common case of a JSON request body whose texts the engine has seen
 * before (see docs/RATIONALE.md). Short texts come from a small cache, so that a
 * recurring key or value is the same string, its hash computed once.
 *
 * split_pairs(text) -> list[str] | None
 *
 * The keys and raw values of an &-separated string (a query, a form body): key,
 * value, key, value..., empty pieces skipped, the value empty when there is no '='.
 * None when text is not ASCII (apishield.normalize then splits it in Python). The
 * texts come from the cache above: a recurring parameter name is hashed once.
 *
 * find_headers(headers, names) -> list[tuple[bytes, bytes]]
 * header_lines(headers, drop) -> tuple[bytes, list[tuple[bytes, bytes]]]
 * decode_headers(headers) -> list[tuple[str, str]]
 *
 * The proxy's work on header lists as llhttp gives them, (name, value) byte pairs:
 * find the few it reads (framing, forwarding), write out the others as lines, and
 * decode them to text for the engine. names and drop are tuples of lower-case
 * names; a header matches one of them whatever the case of its ASCII letters, and
 * is reported with that spelling. In Python each header costs a method call
 * (bytes.lower) and a set lookup or two; here, a few byte compares.
 * apishield.rawheaders has them in Python too, for builds without this module.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Nesting deeper than this is left to the general path, whatever max_depth says. */
#define STACK_DEPTH 128
/* A number longer than this is left to the general path (it decides overflow). */
#define NUMBER_CHARS 64

typedef struct {
    const unsigned char *at;
    const unsigned char *end;
} Cursor;

static void skip_space(Cursor *c) {
    while (c->at < c->end) {
        unsigned char ch = *c->at;
        if (ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t') {
            return;
        }
        c->at++;
    }
}

/* What a byte is within a plain string: */
enum { NOT_PLAIN = 0, PLAIN = 1, QUOTE = 2 };

/* PLAIN for printable ASCII and DEL but '%', '&' and the backslash; QUOTE for '"'. */
static unsigned char byte_class[256];

static void init_byte_class(void) {
    for (int byte = 0x20; byte < 0x80; byte++) {
        byte_class[byte] = PLAIN;
    }
    byte_class['%'] = byte_class['&'] = byte_class['\\'] = NOT_PLAIN;
    byte_class['"'] = QUOTE;
}

/* Short texts recur request after request (keys, enum-like values): the last text
 * seen in each slot is handed out again, hash already computed, instead of a new
 * string the memo of value checks must hash again. */
#define CACHE_SLOTS 4096 /* 1 << 12 */
#define CACHE_CHARS 64
static PyObject *text_cache[CACHE_SLOTS];

/* The cache slot of start[0:length]: a hash of its length and its first and last
 * eight bytes (a collision only costs a new string). */
static size_t slot_of(const unsigned char *start, Py_ssize_t length) {
    uint64_t head = 0;
    uint64_t tail = 0;
    if (length >= 8) {
        memcpy(&head, start, 8);
        memcpy(&tail, start + length - 8, 8);
    } else {
        memcpy(&head, start, (size_t)length);
    }
    uint64_t hash = (head * 0x9E3779B97F4A7C15u) ^ (tail + (uint64_t)length);
    hash *= 0xBF58476D1CE4E5B9u;
    return (size_t)(hash >> 52); /* 12 bits: CACHE_SLOTS */
}

static PyObject *new_text(const unsigned char *start, Py_ssize_t length) {
    PyObject *text = PyUnicode_New(length, 127);
    if (text != NULL) {
        memcpy(PyUnicode_DATA(text), start, (size_t)length);
    }
    return text;
}

/* The (new) reference to the text of start[0:length], from the cache when there. */
static PyObject *text_of(const unsigned char *start, Py_ssize_t length) {
    if (length > CACHE_CHARS) {
        return new_text(start, length);
    }
    PyObject **slot = &text_cache[slot_of(start, length)];
    PyObject *cached = *slot;
    if (cached != NULL && PyUnicode_GET_LENGTH(cached) == length &&
        memcmp(PyUnicode_DATA(cached), start, (size_t)length) == 0) {
        Py_INCREF(cached);
        return cached;
    }
    PyObject *text = new_text(start, length);
    if (text != NULL) {
        Py_INCREF(text);
        Py_XSETREF(*slot, text);
    }
    return text;
}

/* The string at the cursor (which is on its opening quote) appended to texts;
 * 1 on success, 0 when it is not a plain string, -1 on a Python error. */
static int take_string(Cursor *c, PyObject *texts) {
    const unsigned char *start = c->at + 1;
    const unsigned char *p = start;
    const unsigned char *end = c->end;
    while (p < end && byte_class[*p] == PLAIN) {
        p++;
    }
    if (p >= end || byte_class[*p] != QUOTE) {
        return 0;
    }
    PyObject *text = text_of(start, (Py_ssize_t)(p - start));
    if (text == NULL) {
        return -1;
    }
    int failed = PyList_Append(texts, text);
    Py_DECREF(text);
    if (failed) {
        return -1;
    }
    c->at = p + 1;
    return 1;
}

static const unsigned char *digits(const unsigned char *p, const unsigned char *end) {
    while (p < end && *p >= '0' && *p <= '9') {
        p++;
    }
    return p;
}

/* The number at the cursor, skipped; 0 when it is not a JSON number that parses
 * to a finite double (orjson rejects the others). */
static int skip_number(Cursor *c) {
    const unsigned char *start = c->at;
    const unsigned char *p = start;
    const unsigned char *end = c->end;
    if (p < end && *p == '-') {
        p++;
    }
    if (p >= end || *p < '0' || *p > '9') {
        return 0;
    }
    p = (*p == '0') ? p + 1 : digits(p, end);
    int simple = 1;
    if (p < end && *p == '.') {
        const unsigned char *fraction = ++p;
        p = digits(p, end);
        if (p == fraction) {
            return 0;
        }
        simple = 0;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        const unsigned char *exponent = p;
        p = digits(p, end);
        if (p == exponent) {
            return 0;
        }
        simple = 0;
    }
    Py_ssize_t length = (Py_ssize_t)(p - start);
    if (!simple || length > 18) {
        /* may overflow a double: parse it as orjson would */
        char buffer[NUMBER_CHARS + 1];
        if (length > NUMBER_CHARS) {
            return 0;
        }
        memcpy(buffer, start, (size_t)length);
        buffer[length] = '\0';
        /* locale-independent; overflow gives an infinity, not an exception */
        double value = PyOS_string_to_double(buffer, NULL, NULL);
        if (value == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        if (!isfinite(value)) {
            return 0;
        }
    }
    c->at = p;
    return 1;
}

static int skip_literal(Cursor *c, const char *literal, size_t length) {
    if ((size_t)(c->end - c->at) < length || memcmp(c->at, literal, length) != 0) {
        return 0;
    }
    c->at += length;
    return 1;
}

/* One scalar value at the cursor (not a container): 1, 0 or -1 as take_string. */
static int take_scalar(Cursor *c, PyObject *texts) {
    switch (*c->at) {
    case '"':
        return take_string(c, texts);
    case 't':
        return skip_literal(c, "true", 4);
    case 'f':
        return skip_literal(c, "false", 5);
    case 'n':
        return skip_literal(c, "null", 4);
    default:
        return skip_number(c);
    }
}

/* The texts of body into texts: 1 when it is plain and within the limits, else 0
 * (or -1 on a Python error). */
static int scan(Cursor *c, PyObject *texts, Py_ssize_t max_depth, Py_ssize_t max_params) {
    char stack[STACK_DEPTH]; /* '{' or '[' per open container */
    Py_ssize_t depth = 0;
    Py_ssize_t scalars = 0;
    int result;

    skip_space(c);
value:
    if (c->at >= c->end) {
        return 0;
    }
    if (*c->at == '{' || *c->at == '[') {
        if (depth >= max_depth || depth >= STACK_DEPTH) {
            return 0;
        }
        stack[depth++] = (char)*c->at;
        c->at++;
        skip_space(c);
        if (c->at < c->end && *c->at == (stack[depth - 1] == '{' ? '}' : ']')) {
            c->at++;
            depth--;
            goto after_value;
        }
        if (stack[depth - 1] == '{') {
            goto key;
        }
        goto value;
    }
    result = take_scalar(c, texts);
    if (result != 1) {
        return result;
    }
    if (++scalars > max_params) {
        return 0;
    }
after_value:
    skip_space(c);
    if (depth == 0) {
        return c->at == c->end;
    }
    if (c->at >= c->end) {
        return 0;
    }
    if (*c->at == ',') {
        c->at++;
        skip_space(c);
        if (stack[depth - 1] == '{') {
            goto key;
        }
        goto value;
    }
    if (*c->at == (stack[depth - 1] == '{' ? '}' : ']')) {
        c->at++;
        depth--;
        goto after_value;
    }
    return 0;
key:
    if (c->at >= c->end || *c->at != '"') {
        return 0;
    }
    result = take_string(c, texts);
    if (result != 1) {
        return result;
    }
    skip_space(c);
    if (c->at >= c->end || *c->at != ':') {
        return 0;
    }
    c->at++;
    skip_space(c);
    goto value;
}

static PyObject *plain_texts(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "plain_texts(body: bytes, max_depth: int, max_params: int)");
        return NULL;
    }
    Py_ssize_t max_depth = PyLong_AsSsize_t(args[1]);
    if (max_depth == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t max_params = PyLong_AsSsize_t(args[2]);
    if (max_params == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Cursor cursor = {
        (const unsigned char *)PyBytes_AS_STRING(args[0]),
        (const unsigned char *)PyBytes_AS_STRING(args[0]) + PyBytes_GET_SIZE(args[0]),
    };
    PyObject *texts = PyList_New(0);
    if (texts == NULL) {
        return NULL;
    }
    int result = scan(&cursor, texts, max_depth, max_params);
    if (result == 1) {
        return texts;
    }
    Py_DECREF(texts);
    if (result < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *plain_text(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1]) ||
        PyUnicode_READY(args[1]) < 0 || !PyUnicode_IS_ASCII(args[1])) {
        PyErr_SetString(PyExc_TypeError, "plain_text(text: str, stops: str of ASCII characters)");
        return NULL;
    }
    PyObject *text = args[0];
    if (PyUnicode_READY(text) < 0) {
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text)) {
        Py_RETURN_FALSE;
    }
    unsigned char stop[128] = {0};
    const unsigned char *stops = (const unsigned char *)PyUnicode_DATA(args[1]);
    for (Py_ssize_t i = 0, n = PyUnicode_GET_LENGTH(args[1]); i < n; i++) {
        stop[stops[i]] = 1;
    }
    const unsigned char *at = (const unsigned char *)PyUnicode_DATA(text);
    const unsigned char *end = at + PyUnicode_GET_LENGTH(text);
    for (; at < end; at++) {
        if (stop[*at]) {
            Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

/* -- urlencoded pairs --------------------------------------------------------------- */

static PyObject *split_pairs(PyObject *module, PyObject *text) {
    (void)module;
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "split_pairs(text: str)");
        return NULL;
    }
    if (PyUnicode_READY(text) < 0) {
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text)) {
        Py_RETURN_NONE;
    }
    const unsigned char *at = (const unsigned char *)PyUnicode_DATA(text);
    const unsigned char *end = at + PyUnicode_GET_LENGTH(text);
    PyObject *flat = PyList_New(0);
    while (flat != NULL && at <= end) {
        const unsigned char *stop = memchr(at, '&', (size_t)(end - at));
        if (stop == NULL) {
            stop = end;
        }
        if (stop > at) {
            const unsigned char *equals = memchr(at, '=', (size_t)(stop - at));
            const unsigned char *key_end = equals != NULL ? equals : stop;
            const unsigned char *raw = equals != NULL ? equals + 1 : stop;
            PyObject *key = text_of(at, (Py_ssize_t)(key_end - at));
            PyObject *value = key == NULL ? NULL : text_of(raw, (Py_ssize_t)(stop - raw));
            if (value == NULL || PyList_Append(flat, key) < 0 || PyList_Append(flat, value) < 0) {
                Py_CLEAR(flat);
            }
            Py_XDECREF(key);
            Py_XDECREF(value);
        }
        at = stop + 1;
    }
    return flat;
}

/* -- raw header lists (llhttp's (name, value) byte pairs) --------------------------- */

/* ASCII lower case of a byte (no locale). */
static unsigned char lower_byte[256];

static void init_lower_byte(void) {
    for (int byte = 0; byte < 256; byte++) {
        lower_byte[byte] = (unsigned char)(byte >= 'A' && byte <= 'Z' ? byte + 32 : byte);
    }
}

/* The item of names (lower-case bytes) equal to name[0:length] but for ASCII case,
 * or NULL (borrowed). Lengths differ for most pairs, so this is a few compares. */
static PyObject *known_name(PyObject *names, const unsigned char *name, Py_ssize_t length) {
    for (Py_ssize_t i = 0, n = PyTuple_GET_SIZE(names); i < n; i++) {
        PyObject *known = PyTuple_GET_ITEM(names, i);
        if (PyBytes_GET_SIZE(known) != length) {
            continue;
        }
        const unsigned char *expected = (const unsigned char *)PyBytes_AS_STRING(known);
        Py_ssize_t at = 0;
        while (at < length && lower_byte[name[at]] == expected[at]) {
            at++;
        }
        if (at == length) {
            return known;
        }
    }
    return NULL;
}

/* The name and value of pairs[i] (a tuple), borrowed, after checking it is a pair
 * of bytes. */
static int header_at(PyObject *pairs, Py_ssize_t i, PyObject **name, PyObject **value,
                     const char *signature) {
    PyObject *pair = PyTuple_GET_ITEM(pairs, i);
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
        !PyBytes_Check(PyTuple_GET_ITEM(pair, 0)) || !PyBytes_Check(PyTuple_GET_ITEM(pair, 1))) {
        PyErr_SetString(PyExc_TypeError, signature);
        return -1;
    }
    *name = PyTuple_GET_ITEM(pair, 0);
    *value = PyTuple_GET_ITEM(pair, 1);
    return 0;
}

/* The items of a list as a new tuple. The functions below work on such copies: an
 * allocation may run the collector, whose finalizers could change the list and free
 * an item in use. (PyList_AsTuple is not enough: it reads the list after allocating.) */
static PyObject *list_copy(PyObject *list) {
    for (int attempt = 0; attempt < 8; attempt++) {
        Py_ssize_t count = PyList_GET_SIZE(list);
        PyObject *copy = PyTuple_New(count);
        if (copy == NULL) {
            return NULL;
        }
        if (PyList_GET_SIZE(list) == count) { /* nothing runs Python code from here */
            for (Py_ssize_t i = 0; i < count; i++) {
                PyObject *item = PyList_GET_ITEM(list, i);
                Py_INCREF(item);
                PyTuple_SET_ITEM(copy, i, item);
            }
            return copy;
        }
        Py_DECREF(copy);
    }
    PyErr_SetString(PyExc_RuntimeError, "the list kept changing while it was copied");
    return NULL;
}

/* The header list as a tuple (a new reference), after checking the arguments. */
static PyObject *header_pairs(PyObject *const *args, Py_ssize_t nargs, const char *signature) {
    if (nargs != 2 || !PyList_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, signature);
        return NULL;
    }
    for (Py_ssize_t i = 0, n = PyTuple_GET_SIZE(args[1]); i < n; i++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(args[1], i))) {
            PyErr_SetString(PyExc_TypeError, signature);
            return NULL;
        }
    }
    return list_copy(args[0]);
}

/* Append (known, value) to found; -1 on a Python error. */
static int append_found(PyObject *found, PyObject *known, PyObject *value) {
    PyObject *pair = PyTuple_Pack(2, known, value);
    if (pair == NULL) {
        return -1;
    }
    int failed = PyList_Append(found, pair);
    Py_DECREF(pair);
    return failed;
}

/* Every header of pairs named in names into found (and, when dropped is not NULL, a
 * flag per header); the size of the lines of the others; -1 on a Python error. */
static Py_ssize_t sort_headers(PyObject *pairs, PyObject *names, PyObject *found, char *dropped,
                               const char *signature) {
    Py_ssize_t size = 0;
    for (Py_ssize_t i = 0, n = PyTuple_GET_SIZE(pairs); i < n; i++) {
        PyObject *name;
        PyObject *value;
        if (header_at(pairs, i, &name, &value, signature) < 0) {
            return -1;
        }
        PyObject *known = known_name(names, (const unsigned char *)PyBytes_AS_STRING(name),
                                     PyBytes_GET_SIZE(name));
        if (dropped != NULL) {
            dropped[i] = known != NULL;
        }
        if (known != NULL) {
            if (append_found(found, known, value) < 0) {
                return -1;
            }
        } else {
            size += PyBytes_GET_SIZE(name) + PyBytes_GET_SIZE(value) + 4; /* ": ", CRLF */
        }
    }
    return size;
}

static const char FIND_SIGNATURE[] =
    "find_headers(headers: list[tuple[bytes, bytes]], names: tuple[bytes, ...])";

static PyObject *find_headers(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    PyObject *pairs = header_pairs(args, nargs, FIND_SIGNATURE);
    if (pairs == NULL) {
        return NULL;
    }
    PyObject *found = PyList_New(0);
    if (found != NULL && sort_headers(pairs, args[1], found, NULL, FIND_SIGNATURE) < 0) {
        Py_CLEAR(found);
    }
    Py_DECREF(pairs);
    return found;
}

static const char LINES_SIGNATURE[] =
    "header_lines(headers: list[tuple[bytes, bytes]], drop: tuple[bytes, ...])";

/* Whether each header is dropped, a byte each: on the stack for the usual few. */
#define FEW_HEADERS 64

static PyObject *header_lines(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    PyObject *pairs = header_pairs(args, nargs, LINES_SIGNATURE);
    if (pairs == NULL) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(pairs);
    char few[FEW_HEADERS];
    char *dropped = count <= FEW_HEADERS ? few : PyMem_Malloc((size_t)count);
    PyObject *found = PyList_New(0);
    PyObject *lines = NULL;
    PyObject *result = NULL;
    if (dropped == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (found == NULL) {
        goto done;
    }
    Py_ssize_t size = sort_headers(pairs, args[1], found, dropped, LINES_SIGNATURE);
    if (size < 0) {
        goto done;
    }
    lines = PyBytes_FromStringAndSize(NULL, size);
    if (lines == NULL) {
        goto done;
    }
    char *out = PyBytes_AS_STRING(lines);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (dropped[i]) {
            continue;
        }
        PyObject *pair = PyTuple_GET_ITEM(pairs, i);
        PyObject *name = PyTuple_GET_ITEM(pair, 0);
        PyObject *value = PyTuple_GET_ITEM(pair, 1);
        memcpy(out, PyBytes_AS_STRING(name), (size_t)PyBytes_GET_SIZE(name));
        out += PyBytes_GET_SIZE(name);
        memcpy(out, ": ", 2);
        out += 2;
        memcpy(out, PyBytes_AS_STRING(value), (size_t)PyBytes_GET_SIZE(value));
        out += PyBytes_GET_SIZE(value);
        memcpy(out, "\r\n", 2);
        out += 2;
    }
    result = PyTuple_Pack(2, lines, found);
done:
    if (dropped != few) {
        PyMem_Free(dropped);
    }
    Py_XDECREF(lines);
    Py_XDECREF(found);
    Py_DECREF(pairs);
    return result;
}

/* The text of a latin-1 byte string: ASCII ones through the cache of short texts. */
static PyObject *latin1_text(PyObject *raw) {
    if (!PyBytes_Check(raw)) {
        return PyUnicode_FromEncodedObject(raw, "latin-1", NULL); /* other buffers */
    }
    const unsigned char *start = (const unsigned char *)PyBytes_AS_STRING(raw);
    Py_ssize_t length = PyBytes_GET_SIZE(raw);
    for (Py_ssize_t i = 0; i < length; i++) {
        if (start[i] >= 0x80) {
            return PyUnicode_DecodeLatin1((const char *)start, length, NULL);
        }
    }
    return text_of(start, length);
}

static const char DECODE_SIGNATURE[] =
    "decode_headers(headers: iterable of (name, value) byte-string pairs)";

static PyObject *decode_pair(PyObject *pair) {
    if (!PyTuple_Check(pair) && !PyList_Check(pair)) {
        PyErr_SetString(PyExc_TypeError, DECODE_SIGNATURE);
        return NULL;
    }
    PyObject *items = PyList_Check(pair) ? list_copy(pair) : Py_NewRef(pair);
    if (items == NULL) {
        return NULL;
    }
    PyObject *result = NULL;
    if (PyTuple_GET_SIZE(items) != 2) {
        PyErr_SetString(PyExc_TypeError, DECODE_SIGNATURE);
    } else {
        PyObject *name = latin1_text(PyTuple_GET_ITEM(items, 0));
        PyObject *value = name == NULL ? NULL : latin1_text(PyTuple_GET_ITEM(items, 1));
        if (value != NULL) {
            result = PyTuple_Pack(2, name, value);
        }
        Py_XDECREF(name);
        Py_XDECREF(value);
    }
    Py_DECREF(items);
    return result;
}

static PyObject *decode_headers(PyObject *module, PyObject *headers) {
    (void)module;
    /* a tuple, for the reason list_copy gives */
    PyObject *items = PyList_Check(headers) ? list_copy(headers) : PySequence_Tuple(headers);
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(items);
    PyObject *decoded = PyList_New(count);
    for (Py_ssize_t i = 0; decoded != NULL && i < count; i++) {
        PyObject *pair = decode_pair(PyTuple_GET_ITEM(items, i));
        if (pair == NULL) {
            Py_CLEAR(decoded);
        } else {
            PyList_SET_ITEM(decoded, i, pair);
        }
    }
    Py_DECREF(items);
    return decoded;
}

static PyMethodDef methods[] = {
    {"plain_text", (PyCFunction)(void (*)(void))plain_text, METH_FASTCALL,
     "True when text is ASCII without any character of stops (see the module)."},
    {"plain_texts", (PyCFunction)(void (*)(void))plain_texts, METH_FASTCALL,
     "The keys and strings of a plain JSON body, in order, or None (see the module)."},
    {"find_headers", (PyCFunction)(void (*)(void))find_headers, METH_FASTCALL,
     "The (name, value) of every header named in names, by names' spelling (see the module)."},
    {"header_lines", (PyCFunction)(void (*)(void))header_lines, METH_FASTCALL,
     "The lines of the headers not named in drop, and the (name, value) of those that are."},
    {"split_pairs", (PyCFunction)split_pairs, METH_O,
     "Key, raw value, key, raw value... of an ASCII &-separated string, or None."},
    {"decode_headers", (PyCFunction)decode_headers, METH_O,
     "The headers as latin-1 text pairs (see the module)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "apishield._speedups",
    .m_doc = "What runs on every request and is slow in Python, in C (see apishield.rawheaders).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    init_byte_class();
    init_lower_byte();
    return PyModule_Create(&module);
}
