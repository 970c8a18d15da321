// The command-line front end: tokenizer train/encode/decode/add-special and tokenize.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "tok_test_util.h"
#include "tokenizer/bpe.h"
#include "tokenizer/shards.h"

using namespace tv::tok;
using namespace tv::tok::testing;

namespace {

// Runs the tinyvlm binary with args (a shell fragment); returns the exit status, stdout in *out.
int run(const std::string& args, std::string* out = nullptr, const std::string& stderr_file = "/dev/null") {
  const std::string cmd = std::string(TV_TINYVLM_BIN) + " " + args + " 2>" + stderr_file;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) s.append(buf, n);
  const int rc = pclose(p);
  if (out) *out = s;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string ids_line(const std::vector<int32_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(v[i]);
  }
  return s + "\n";
}

}  // namespace

TEST(TokenizerCli, TrainEncodeDecodeTokenize) {
  TempDir d;
  const std::string tok = fixture("hf_tokenizer.json");
  const Tokenizer t = Tokenizer::load(tok);

  // train: a small vocabulary on a slice of the corpus; the file loads and encodes.
  write_all(d / "train.txt", read_all(fixture("corpus.txt")).substr(0, 50000));
  ASSERT_EQ(run("tokenizer train --quiet --input " + (d / "train.txt") + " --vocab-size 400 --min-frequency 2 --out " +
                (d / "t.json")),
            0);
  const Tokenizer trained = Tokenizer::load(d / "t.json");
  EXPECT_EQ(trained.vocab_size(), 400u);
  EXPECT_EQ(trained.token_to_id("</s>"), 2);

  // encode --lines: one line of ids per input line.
  const std::string text = "Hello world!\nit's 2024 \xF0\x9F\x98\x80\n\n<s>x</s>";
  write_all(d / "in.txt", text);
  std::string out;
  ASSERT_EQ(run("tokenizer encode --tokenizer " + tok + " --lines --input " + (d / "in.txt"), &out), 0);
  EXPECT_EQ(out, ids_line(t.encode("Hello world!")) + ids_line(t.encode("it's 2024 \xF0\x9F\x98\x80")) + "\n" +
                     ids_line(t.encode("<s>x</s>")));
  // Without --lines the whole input is one text (read from stdin here).
  ASSERT_EQ(run("tokenizer encode --tokenizer " + tok + " < " + (d / "in.txt"), &out), 0);
  EXPECT_EQ(out, ids_line(t.encode(text)));

  // decode: a line of ids in, a line of text out; special tokens skipped unless asked.
  write_all(d / "ids.txt", ids_line(t.encode("Hello world!")) + ids_line(t.encode("<s>x</s>")));
  ASSERT_EQ(run("tokenizer decode --tokenizer " + tok + " --input " + (d / "ids.txt"), &out), 0);
  EXPECT_EQ(out, "Hello world!\nx\n");
  ASSERT_EQ(run("tokenizer decode --keep-special --tokenizer " + tok + " --input " + (d / "ids.txt"), &out), 0);
  EXPECT_EQ(out, "Hello world!\n<s>x</s>\n");

  // add-special: <image> after the vocabulary, as HuggingFace assigns it.
  ASSERT_EQ(run("tokenizer add-special --tokenizer " + tok + " --token '<image>' --out " + (d / "img.json"), &out), 0);
  EXPECT_EQ(out, "<image>\t4000\n");
  EXPECT_EQ(Tokenizer::load(d / "img.json").token_to_id("<image>"), 4000);

  // tokenize: shards readable by ShardSet.
  write_all(d / "docs.jsonl", "{\"text\": \"a b c\"}\n{\"text\": \"d e\"}\n");
  ASSERT_EQ(run("tokenize --quiet --tokenizer " + tok + " --input " + (d / "docs.jsonl") + " --out " + (d / "shards")), 0);
  const ShardSet s(d / "shards");
  std::vector<int32_t> got(s.size());
  s.read(0, got.size(), got.data());
  std::vector<int32_t> want = t.encode("a b c");
  want.push_back(2);
  for (int32_t id : t.encode("d e")) want.push_back(id);
  want.push_back(2);
  EXPECT_EQ(got, want);
}

TEST(TokenizerCli, ErrorsNameTheProblem) {
  TempDir d;
  write_all(d / "bad.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[\"a\", \"q\"]]}, "
                            "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}");
  write_all(d / "in.txt", "hello");
  EXPECT_EQ(run("tokenizer encode --tokenizer " + (d / "bad.json") + " --input " + (d / "in.txt"), nullptr, d / "err.txt"), 1);
  EXPECT_NE(read_all(d / "err.txt").find("model.merges[0]"), std::string::npos) << read_all(d / "err.txt");

  write_all(d / "bad.txt", "abc\xFE");
  EXPECT_EQ(run("tokenizer encode --tokenizer " + fixture("hf_tokenizer.json") + " --input " + (d / "bad.txt"), nullptr,
                d / "err.txt"),
            1);
  EXPECT_NE(read_all(d / "err.txt").find("byte 3"), std::string::npos) << read_all(d / "err.txt");
}
