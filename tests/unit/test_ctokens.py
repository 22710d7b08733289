"""The C tokenizer and call finder on tricky snippets (no kernel tree needed)."""

from __future__ import annotations

from kseries.kernel.ccalls import find_calls, signatures_in
from kseries.kernel.ctokens import CallSite, function_spans, join_tokens, tokenize

FAMILY = ("add_memory", "__add_memory", "add_memory_resource", "add_memory_driver_managed")


def calls(src: str, kinds: tuple[str, ...] = ("call",)) -> list[CallSite]:
    return [c for c in find_calls(src, FAMILY, "t.c") if c.kind in kinds]


def test_tokens_carry_lines_and_drop_comments() -> None:
    tokens = tokenize("int a; /* one\n two */ int b;\n// three\nint c;\n")
    assert [(t.text, t.line) for t in tokens if t.kind == "ident"] == [
        ("int", 1), ("a", 1), ("int", 2), ("b", 2), ("int", 4), ("c", 4)]


def test_string_and_char_literals_with_prefixes_and_escapes() -> None:
    tokens = tokenize(r'''s = L"a(b" u8"c\"d)" 'x' '\'' '(' u'\n';''')
    assert [(t.kind, t.text) for t in tokens if t.kind in ("string", "char")] == [
        ("string", 'L"a(b"'), ("string", r'u8"c\"d)"'), ("char", "'x'"), ("char", r"'\''"),
        ("char", "'('"), ("char", r"u'\n'")]


def test_strings_with_parentheses_do_not_confuse_arguments() -> None:
    src = 'void f(void)\n{\n\tputs("add_memory(1, 2)");\n\tadd_memory(a, "x), (", b, c);\n}\n'
    [call] = calls(src)
    assert (call.line, call.function, call.args) == (4, "f", ("a", '"x), ("', "b", "c"))


def test_char_literals_of_parentheses() -> None:
    src = "void f(void)\n{\n\tadd_memory('(', ')', '\\'', MHP_NONE);\n\tg(')');\n}\n"
    [call] = calls(src)
    assert call.args == ("'('", "')'", "'\\''", "MHP_NONE")


def test_line_continuations_keep_line_numbers() -> None:
    src = ("#define X(a) \\\n\tdo { \\\n\t\tadd_memory(a, 0, 0, MHP_NONE); \\\n\t} while (0)\n"
           "void f(void)\n{\n\tadd_mem\\\nory(1, 2,\\\n 3, MHP_NONE);\n\tint z;\n}\n")
    found = find_calls(src, FAMILY, "t.c")
    assert [(c.kind, c.line, c.function) for c in found] == [
        ("macro_call", 3, "X"), ("call", 7, "f")]
    assert found[1].args == ("1", "2", "3", "MHP_NONE")
    z = [t for t in tokenize(src) if t.text == "z"]
    assert z[0].line == 10


def test_comments_containing_calls_are_not_calls() -> None:
    src = ("void f(void)\n{\n\t/* add_memory(nid, start, size, 0); */\n"
           "\t// add_memory(nid, start, size, 0);\n\t// continued \\\n\tadd_memory(1, 2, 3, 0);\n"
           "\tx = 1; /* add_memory() */\n}\n")
    assert calls(src) == []


def test_if_0_blocks_are_skipped_with_nesting() -> None:
    src = """void f(void)
{
#if 0
\tadd_memory(1, 2, 3, 0);
#ifdef CONFIG_X
\tadd_memory(4, 5, 6, 0);
#endif
\tdon't mind the apostrophe
#elif defined(CONFIG_Y)
\tadd_memory(7, 8, 9, MHP_NONE);
#else
\tadd_memory(10, 11, 12, MHP_NONE);
#endif
#ifdef CONFIG_Z
#if 0
\tadd_memory(13, 14, 15, 0);
#else
\tadd_memory(16, 17, 18, MHP_NONE);
#endif
#endif
#if 1
\tadd_memory(19, 20, 21, MHP_NONE);
#else
\tadd_memory(22, 23, 24, 0);
#endif
}
"""
    assert [c.line for c in calls(src)] == [10, 12, 18, 22]
    assert {c.function for c in calls(src)} == {"f"}


def test_call_split_over_lines_with_comment_and_nested_macro() -> None:
    src = ("static int hot_add(unsigned long start_pfn)\n{\n\tint ret;\n\n"
           "\tret = add_memory(nid, /* x */ PFN_PHYS(start_pfn), \n"
           "\t\t  size, MHP_NONE | (flags));\n\treturn ret;\n}\n")
    [call] = calls(src)
    assert call.line == 5 and call.end_line == 6
    assert call.function == "hot_add"
    assert call.args == ("nid", "PFN_PHYS(start_pfn)", "size", "MHP_NONE | (flags)")
    assert call.text == "add_memory(nid, PFN_PHYS(start_pfn), size, MHP_NONE | (flags))"


def test_nested_brackets_braces_and_ternaries_stay_in_one_argument() -> None:
    src = ("void f(void)\n{\n\tadd_memory(a[i, j], g(x, (y, z)), ((struct s){ .a = 1, .b = 2 }).a,"
           "\n\t\tEDAT ?\n\t\tMHP_A | MHP_B : MHP_NONE);\n}\n")
    [call] = calls(src)
    assert call.args == ("a[i, j]", "g(x, (y, z))", "((struct s){ .a = 1, .b = 2 }).a",
                         "EDAT ? MHP_A | MHP_B : MHP_NONE")


def test_definition_declaration_and_kr_prototypes() -> None:
    src = """extern int add_memory(int nid, u64 start, u64 size, mhp_t mhp_flags);
int __add_memory(int nid, u64 start, u64 size, mhp_t mhp_flags);
static int __meminit
add_memory_resource(int nid,
\t\t    struct resource *res,
\t\t    mhp_t mhp_flags)
{
\treturn __add_memory(nid, res->start, resource_size(res), mhp_flags);
}
int add_memory_driver_managed(nid, start, size, name, flags)
\tint nid; u64 start, size; const char *name; mhp_t flags;
{
\treturn add_memory(nid, start, size, flags);
}
"""
    found = find_calls(src, FAMILY, "t.c")
    assert [(c.kind, c.name, c.line, c.function) for c in found] == [
        ("declaration", "add_memory", 1, ""),
        ("declaration", "__add_memory", 2, ""),
        ("definition", "add_memory_resource", 4, "add_memory_resource"),
        ("call", "__add_memory", 8, "add_memory_resource"),
        ("definition", "add_memory_driver_managed", 10, "add_memory_driver_managed"),
        ("call", "add_memory", 13, "add_memory_driver_managed"),
    ]
    assert found[2].args == ("int nid", "struct resource *res", "mhp_t mhp_flags")
    assert found[2].end_line == 6


def test_block_scope_declaration_is_not_a_call() -> None:
    src = "void f(void)\n{\n\textern int add_memory(int nid, u64 a, u64 b, mhp_t c);\n}\n"
    assert [c.kind for c in find_calls(src, FAMILY)] == ["declaration"]


def test_address_of_and_function_pointer_uses() -> None:
    src = """static int (*hook)(int, u64, u64, mhp_t) = add_memory;
void f(void)
{
\tfn = &__add_memory;
\tregister_hook(add_memory_resource, 1);
\tops->add_memory(1, 2, 3, 4);
\ts.add_memory = 1;
}
EXPORT_SYMBOL_GPL(add_memory);
"""
    found = [(c.kind, c.text, c.line) for c in find_calls(src, FAMILY)]
    assert found == [("address", "add_memory", 1), ("address", "&__add_memory", 4),
                     ("address", "add_memory_resource", 5),
                     ("export", "EXPORT_SYMBOL_GPL(add_memory)", 9)]


def test_macro_bodies_hold_macro_calls() -> None:
    src = ("#define ADD(nid, start) add_memory(nid, start, SZ, \\\n\tMHP_NONE)\n"
           "#define HOOK add_memory_resource\n#define add_memory_driver_managed(a) (a)\n"
           "void f(void) { ADD(1, 2); }\n")
    found = [(c.kind, c.name, c.function, c.line, c.args) for c in find_calls(src, FAMILY)]
    assert found == [
        ("macro_call", "add_memory", "ADD", 1, ("nid", "start", "SZ", "MHP_NONE")),
        ("address", "add_memory_resource", "HOOK", 3, ()),
        ("definition", "add_memory_driver_managed", "add_memory_driver_managed", 4, ("a",)),
    ]


def test_static_inline_in_header_calls_are_calls() -> None:
    src = ("#ifndef _X_H\n#define _X_H\nstatic inline int add_all(int nid)\n{\n"
           "\treturn add_memory(nid, 0, SZ_1G, MHP_NONE);\n}\n#endif\n")
    [call] = calls(src)
    assert (call.function, call.line) == ("add_all", 5)


def test_attributes_after_parameters_and_unbalanced_ifdef_braces() -> None:
    src = """void locked(void) __must_hold(&lock)
{
\tadd_memory(1, 2, 3, MHP_NONE);
}
#ifdef CONFIG_A
static int two(int a)
{
#else
static int two(void)
{
#endif
\treturn add_memory(4, 5, 6, MHP_NONE);
}
void three(void)
{
\tadd_memory(7, 8, 9, MHP_NONE);
}
"""
    assert [(c.function, c.line) for c in calls(src)] == [
        ("locked", 3), ("two", 12), ("three", 16)]


def test_function_spans() -> None:
    src = "int a(void)\n{\n\treturn 1;\n}\nstruct s { int x; };\nstatic void\nb(int x)\n{\n}\n"
    spans = function_spans(tokenize(src))
    assert [(s.name, s.start_line, s.end_line) for s in spans] == [("a", 1, 4), ("b", 7, 9)]


def test_signatures_in_a_snippet_that_starts_inside_a_body() -> None:
    snippet = "\treturn x;\n}\n\nint add_memory(int nid, u64 start)\n{\n\treturn 0;\n}\n"
    found = signatures_in(tokenize(snippet), start_depth=1, start_function="prev")
    assert [(s.name, s.kind, s.args) for s in found] == [
        ("add_memory", "definition", ("int nid", "u64 start"))]


def test_join_tokens_normalises_spacing() -> None:
    def norm(text: str, declaration: bool = False) -> str:
        return join_tokens(tokenize(text), declaration)

    assert norm("MHP_NONE|( flags )") == "MHP_NONE | (flags)"
    assert norm("a -> b . c [ 1 ]") == "a->b.c[1]"
    assert norm("(u64) x << 2") == "(u64)x << 2"
    assert norm("- 1") == "-1"
    assert norm("x - 1") == "x - 1"
    assert norm("& range") == "&range"
    assert norm("f ( a , b )") == "f(a, b)"
    assert norm("! ( x & ~ MHP_A )") == "!(x & ~MHP_A)"
    assert norm("const char * name", declaration=True) == "const char *name"
    assert norm("i ++") == "i++"


def test_unterminated_input_does_not_crash() -> None:
    for src in ("/* never closed", '"never closed', "f(a, b", "#if 0\nadd_memory(", "}}}"):
        tokenize(src)
        find_calls(src, FAMILY)
