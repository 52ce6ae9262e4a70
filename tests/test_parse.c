// test_parse.c: every construct of the grammar parses into the AST we expect.
//
// Each test parses a small program and compares its AST dump (dump_ast.c's
// format: statements one per line, expressions as S-expressions).
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static void expect_ast(const char *src, const char *want) {
  char *got = parse_dump(src, NULL);
  cr_expect_str_eq(got, want, "source:\n%s\ngot:\n%s\nwant:\n%s", src, got, want);
  free(got);
}

// Wraps an expression in a model so that it is parsed in value position.
static void expect_expr(const char *expr, const char *want) {
  char src[512], full[512];
  snprintf(src, sizeof src, "model m {\n  let v = %s\n}\n", expr);
  snprintf(full, sizeof full, "model m()\n  let v = %s\n", want);
  expect_ast(src, full);
}

TEST(parse, empty_file) { expect_ast("", ""); }

TEST(parse, comments_and_blank_lines) {
  expect_ast("# a comment\n\n   # another\nimport \"nn\" # trailing\n\n", "import \"nn\"\n");
}

TEST(parse, import) { expect_ast("import \"nn\"; import \"lib/x.smelt\"\n", "import \"nn\"\nimport \"lib/x.smelt\"\n"); }

TEST(parse, fn_with_typed_and_ct_params) {
  expect_ast("fn linear(x: f32[..., I], out: int, bias: bool = true, s: str = \"a\", p: float = 0.5) "
             "-> f32[..., out] {\n  return x\n}\n",
             "fn linear(x: f32[..., I], out: int, bias: bool = true, s: str = \"a\", p: float = 0.5) "
             "-> f32[..., out]\n  return x\n");
}

TEST(parse, fn_untyped_params_and_tuple_result) {
  expect_ast("fn f(a, b = 2) -> (f32[B, H], f32[B, H]) { return a, b }",
             "fn f(a, b = 2) -> (f32[B, H], f32[B, H])\n  return a, b\n");
}

TEST(parse, fn_no_params_trailing_comma) {
  expect_ast("fn f() { return }\nfn g(a, b,) { return a }\n",
             "fn f()\n  return\nfn g(a, b)\n  return a\n");
}

TEST(parse, model_with_sizes) {
  expect_ast("model gpt(B = 64, T = 128, C = 4 * 64, L) {\n}\n",
             "model gpt(B = 64, T = 128, C = (* 4 64), L)\n");
}

TEST(parse, model_without_sizes) { expect_ast("model m { }", "model m()\n"); }

TEST(parse, model_statements) {
  expect_ast("model m(B = 2) {\n"
             "  input x: f32[B, 784]\n"
             "  input y: i32[B]\n"
             "  param w: f32[784, 10] = normal(0.0, 0.02)\n"
             "  param b: f32[10] = zeros\n"
             "  output logits = x @ w + b\n"
             "  output p: f32[B, 10] = logits\n"
             "  loss cross_entropy(logits, y)\n"
             "}\n",
             "model m(B = 2)\n"
             "  input x: f32[B, 784]\n"
             "  input y: i32[B]\n"
             "  param w: f32[784, 10] = (call normal 0.0 0.02)\n"
             "  param b: f32[10] = zeros\n"
             "  output logits = (+ (@ x w) b)\n"
             "  output p: f32[B, 10] = logits\n"
             "  loss (call cross_entropy logits y)\n");
}

TEST(parse, let_forms) {
  expect_ast("fn f(x) {\n  let a = x\n  let b: f32[2, 3] = x\n  let c, d = g(x)\n  a = b\n  c, d = d, c\n}\n",
             "fn f(x)\n  let a = x\n  let b: f32[2, 3] = x\n  let c, d = (call g x)\n  a = b\n"
             "  c, d = (tuple d c)\n");
}

TEST(parse, for_and_if) {
  expect_ast("fn f(x, n: int) {\n"
             "  for i in 0..n {\n    x = g(x) as blocks[i]\n  }\n"
             "  if n > 2 {\n    x = x\n  } else if n == 1 {\n    x = -x\n  }\n  else {\n    x = x * 2\n  }\n"
             "  return x\n}\n",
             "fn f(x, n: int)\n"
             "  for i in 0 .. n\n    x = (call g x as blocks[i])\n"
             "  if (> n 2)\n    x = x\n  else if (== n 1)\n    x = (- x)\n  else\n    x = (* x 2)\n"
             "  return x\n");
}

TEST(parse, assert_forms) {
  expect_ast("fn f(c: int) {\n  assert c % 2 == 0\n  assert c > 0, \"c must be positive\"\n  return c\n}\n",
             "fn f(c: int)\n  assert (== (% c 2) 0)\n  assert (> c 0) \"c must be positive\"\n  return c\n");
}

TEST(parse, expression_statement_parses) {
  expect_ast("fn f(x) {\n  g(x)\n  return x\n}\n", "fn f(x)\n  (call g x)\n  return x\n");
}

TEST(parse, semicolons_separate_statements) {
  expect_ast("fn f(x) { let a = x; let b = a; return b }",
             "fn f(x)\n  let a = x\n  let b = a\n  return b\n");
}

TEST(parse, literals) {
  expect_expr("42", "42");
  expect_expr("1_000_000", "1000000");
  expect_expr("0.5", "0.5");
  expect_expr("1e-3", "0.001");
  expect_expr("2.5E+2", "250.0");
  expect_expr("\"a\\tb\\n\\\\\\\"\"", "\"a\\tb\\n\\\\\\\"\"");
  expect_expr("true", "true");
  expect_expr("false", "false");
}

// Literals are read whole at any length; once they were cut at 127 characters.
TEST(parse, long_literals_are_exact) {
  char lit[300];
  memset(lit, '0', sizeof lit);
  memcpy(lit, "1.", 2);
  lit[200] = '\0';   // 1.000...0 with 198 zeros
  expect_expr(lit, "1.0");
  memset(lit, '0', 200);
  lit[199] = '7';    // 0...07, an integer of 200 digits
  expect_expr(lit, "7");
}

TEST(parse, arithmetic_precedence) {
  expect_expr("a + b * c", "(+ a (* b c))");
  expect_expr("a - b - c", "(- (- a b) c)");
  expect_expr("a / b // c % d @ e", "(@ (% (// (/ a b) c) d) e)");
  expect_expr("(a + b) * c", "(* (+ a b) c)");
}

TEST(parse, power_is_right_associative_and_binds_tighter_than_unary) {
  expect_expr("a ** b ** c", "(** a (** b c))");
  expect_expr("-x ** 2", "(- (** x 2))");
  expect_expr("x ** -y", "(** x (- y))");
  expect_expr("--x", "(- (- x))");
  expect_expr("+x", "(+ x)");
}

TEST(parse, comparisons_and_logic) {
  expect_expr("a < b and c >= d or not e", "(or (and (< a b) (>= c d)) (not e))");
  expect_expr("a == b", "(== a b)");
  expect_expr("a != b", "(!= a b)");
  expect_expr("a <= b + 1", "(<= a (+ b 1))");
  expect_expr("not a and b", "(and (not a) b)");
}

TEST(parse, matmul_binds_like_mul) {
  expect_expr("x @ w + b", "(+ (@ x w) b)");
}

TEST(parse, calls_and_keyword_args) {
  expect_expr("f()", "(call f)");
  expect_expr("f(x, 1, axis = -1, keep = true)", "(call f x 1 axis=(- 1) keep=true)");
  expect_expr("f(x,)", "(call f x)");
  expect_expr("f(g(x))(y)", "(call (call f (call g x)) y)");
}

TEST(parse, scopes_with_as) {
  expect_expr("linear(x, 10) as fc1", "(call linear x 10 as fc1)");
  expect_expr("block(x) as blocks[i + 1]", "(call block x as blocks[(+ i 1)])");
  expect_expr("block(x) as \"enc.0\"", "(call block x as \"enc.0\")");
  expect_expr("x + f(x) as s", "(+ x (call f x as s))");
  expect_expr("relu(linear(x, 3) as a)", "(call relu (call linear x 3 as a))");
  expect_expr("(f(x) as s)[0]", "(index (call f x as s) 0)");
  expect_expr("f(x) as s.T", "(. (call f x as s) T)");
}

TEST(parse, methods_and_properties) {
  expect_expr("x.reshape(B, -1).T", "(. (call (. x reshape) B (- 1)) T)");
  expect_expr("x.sum(axis = -1, keep = true)", "(call (. x sum) axis=(- 1) keep=true)");
  expect_expr("x.transpose(1, 2)", "(call (. x transpose) 1 2)");
  expect_expr("x.shape[-1]", "(index (. x shape) (- 1))");
}

TEST(parse, indexing_and_slicing) {
  expect_expr("x[0]", "(index x 0)");
  expect_expr("x[:, 1:3]", "(index x (slice _ _ _) (slice 1 3 _))");
  expect_expr("x[..., -1]", "(index x ... (- 1))");
  expect_expr("x[::2, a:]", "(index x (slice _ _ 2) (slice a _ _))");
  expect_expr("x[1:n:2]", "(index x (slice 1 n 2))");
  expect_expr("x[i][j]", "(index (index x i) j)");
}

TEST(parse, tuples) {
  expect_expr("(a, b)", "(tuple a b)");
  expect_expr("(a,)", "(tuple a)");
  expect_expr("(a, b, c,)", "(tuple a b c)");
  expect_expr("(a)", "a");
}

TEST(parse, lists) {
  expect_expr("[]", "(list)");
  expect_expr("[a]", "(list a)");
  expect_expr("[a, f(b), c,]", "(list a (call f b) c)");
  expect_expr("xs + [x[0]]", "(+ xs (list (index x 0)))");
  expect_expr("[a, b][-1]", "(index (list a b) (- 1))");
  expect_ast("fn f(xs) {\n  for x in xs[::-1] {\n    g(x)\n  }\n  let ys = [\n    1,\n    2\n  ]\n}\n",
             "fn f(xs)\n  for x in (index xs (slice _ _ (- 1)))\n    (call g x)\n  let ys = (list 1 2)\n");
}

TEST(parse, expressions_continue_across_lines) {
  expect_ast("fn f(a, b) {\n  let x = a +\n    b\n  let y = g(a,\n    b\n  )\n  let z = y[0,\n    1]\n  return x\n}\n",
             "fn f(a, b)\n  let x = (+ a b)\n  let y = (call g a b)\n  let z = (index y 0 1)\n  return x\n");
}

TEST(parse, types) {
  expect_ast("fn f(a: tensor, b: f32, c: bf16[], d: i64[2, N * 3], e: u8[...], g: bool[T, T]) { return a }",
             "fn f(a: tensor, b: f32, c: bf16[], d: i64[2, (* N 3)], e: u8[...], g: bool[T, T])\n"
             "  return a\n");
}

TEST(parse, train_block) {
  expect_ast("train {\n"
             "  optimizer = adamw(lr = 1e-3, weight_decay = 0.01)\n"
             "  schedule = cosine(warmup = 100)\n"
             "  precision = bf16\n"
             "  epochs = 5\n"
             "  data train {\n    x = idx(\"a.gz\", scale = 1 / 255)\n    idx, targets = text(\"t\")\n  }\n"
             "  data test { x = idx(\"b.gz\") }\n"
             "}\n",
             "train\n"
             "  optimizer = (call adamw lr=0.001 weight_decay=0.01)\n"
             "  schedule = (call cosine warmup=100)\n"
             "  precision = bf16\n"
             "  epochs = 5\n"
             "  data train\n    x = (call idx \"a.gz\" scale=(/ 1 255))\n    idx, targets = (call text \"t\")\n"
             "  data test\n    x = (call idx \"b.gz\")\n");
}

TEST(parse, spans_cover_whole_expressions) {
  const char *src = "model m {\n  let v = foo(a, b) + c\n}\n";
  Arena arena = {0};
  Diag d;
  diag_init(&d, stderr);
  size_t n = strlen(src);
  char *text = xmalloc(n + 1);
  memcpy(text, src, n + 1);
  int file = diag_add_source(&d, "t.smelt", text, (int)n);
  Ast *root = parse_source(&arena, &d, file);
  Ast *let = root->list.items[0]->b->list.items[0];
  Ast *sum = let->b;
  cr_expect_eq(sum->kind, N_BINARY);
  cr_expect_eq(sum->span.begin, (int)(strstr(src, "foo") - src));
  cr_expect_eq(sum->span.end, (int)(strstr(src, "c\n}") - src) + 1);
  Ast *call = sum->a;
  cr_expect_eq(call->span.end - call->span.begin, (int)strlen("foo(a, b)"));
  int line, col;
  diag_line_col(d.files[file], call->span.begin, &line, &col);
  cr_expect_eq(line, 2);
  cr_expect_eq(col, 11);
  arena_free(&arena);
  diag_free(&d);
}
