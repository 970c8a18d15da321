// The generator against the PyTorch reference (tests/fixtures/torch/ask_expected.safetensors, written by
// scripts/fixtures/torch_checkpoint_fixtures.py): the original's phase-3 checkpoint (vlm.*, torch.save)
// and its phase-2 naming answer the original's prompt with the reference's greedy tokens, with and
// without the KV cache; resuming a cached state equals starting afresh; stop sequences, token limits
// and the UTF-8 text stream.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "data/image.h"
#include "io/safetensors.h"
#include "io/tensor_source.h"
#include "model/chat_prompt.h"
#include "model/checkpoint.h"
#include "model/generator.h"
#include "model/vlm.h"
#include "tokenizer/bpe.h"

using namespace tv;

namespace {

const std::string kDir = std::string(TV_FIXTURE_DIR) + "/torch/";
const std::string kInstruct = kDir + "tiny_instruct.pt", kPhase2 = kDir + "tiny_vlm.pt";
const std::string kConfig = kDir + "ask_config.toml", kTokenizer = kDir + "ask_tokenizer.json";
const std::string kImage = kDir + "ask_image.png";
const char* kQuestion = "What colour is the shape?";

std::vector<int32_t> ids_of(const Tensor& t) {
  return std::vector<int32_t>(t.data<int32_t>(), t.data<int32_t>() + t.numel());
}

struct Fixture {
  std::unique_ptr<LoadedVlm> vlm;
  tok::Tokenizer tk;
  SafetensorsFile expected{kDir + "ask_expected.safetensors"};
  Tensor prefix;
  std::vector<int32_t> prompt;
  explicit Fixture(const std::string& ckpt = kInstruct)
      : vlm(load_vlm(ckpt, kConfig)), tk(tok::Tokenizer::load(kTokenizer)) {
    prefix = vlm->model->image_prefix_from_file(kImage);
    prompt = encode_question_prompt(tk, kQuestion);
  }
  std::vector<int32_t> answer(double penalty, bool cache, int64_t max_new = 24) {
    GenerationOptions go;
    go.max_new_tokens = max_new;
    go.sampling.repetition_penalty = penalty;
    go.use_cache = cache;
    go.stop_ids = {2};
    Generator g(vlm->model->llm(), go);
    GenerationState s = g.start(prefix, prompt);
    return g.run(s);
  }
};

}  // namespace

TEST(Generator, Phase3CheckpointAnswersAsTheReference) {
  Fixture f;
  EXPECT_EQ(f.vlm->file_prefix, "vlm.");
  EXPECT_GT(f.vlm->report.ignored, 0) << "the original's unused blocks are ignored";
  EXPECT_EQ(f.prompt, ids_of(f.expected.get("prompt_ids"))) << "the original's prompt format";
  // The image preprocessed as in training.
  Tensor pixels = Tensor::empty({3, 32, 32});
  preprocess_image_file(kImage, pixels.data<float>(), 32, 32);
  Tensor ref_pixels = f.expected.get("pixels");
  for (int64_t i = 0; i < pixels.numel(); ++i)
    ASSERT_NEAR(pixels.data<float>()[i], ref_pixels.data<float>()[i], 1e-6) << i;
  // First-step logits within float rounding of the reference, then the exact greedy tokens.
  GenerationOptions go;
  Generator g(f.vlm->model->llm(), go);
  GenerationState s = g.start(f.prefix, f.prompt);
  Tensor ref = f.expected.get("first_logits");
  ASSERT_EQ(int64_t(s.logits.size()), ref.numel());
  double worst = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) worst = std::max(worst, std::fabs(double(s.logits[i]) - ref.data<float>()[i]));
  EXPECT_LT(worst, 1e-4);
  const std::vector<int32_t> greedy = ids_of(f.expected.get("greedy_ids"));
  const std::vector<int32_t> penalised = ids_of(f.expected.get("penalty_1.2_ids"));
  ASSERT_GE(greedy.size(), 8u);
  EXPECT_EQ(f.answer(1.0, true), greedy);
  EXPECT_EQ(f.answer(1.0, false), greedy) << "recomputing the whole sequence, the original's way";
  EXPECT_EQ(f.answer(1.2, true), penalised);
  EXPECT_EQ(f.answer(1.2, false), penalised);
}

TEST(Generator, Phase2NamingLoadsTheSameModel) {
  Fixture a(kInstruct), b(kPhase2);
  EXPECT_EQ(b.vlm->file_prefix, "");
  ASSERT_EQ(a.vlm->params.all().size(), b.vlm->params.all().size());
  for (size_t i = 0; i < a.vlm->params.all().size(); ++i) {
    const Param &p = a.vlm->params.all()[i], &q = b.vlm->params.all()[i];
    ASSERT_EQ(p.name, q.name);
    ASSERT_EQ(std::memcmp(p.value.raw(), q.value.raw(), p.value.nbytes()), 0) << p.name;
  }
  EXPECT_EQ(b.answer(1.0, true), ids_of(b.expected.get("greedy_ids")));
  auto file = open_tensor_file(kInstruct);
  EXPECT_NE(checkpoint_kind(*file).find("phase-3/4"), std::string::npos);
  EXPECT_NE(checkpoint_kind(*open_tensor_file(kPhase2)).find("phase-2"), std::string::npos);
}

TEST(Generator, ResumingACachedStateEqualsStartingAfresh) {
  Fixture f;
  GenerationOptions go;
  go.max_new_tokens = 6;
  go.stop_ids = {2};
  Generator g(f.vlm->model->llm(), go);
  GenerationState s = g.start(f.prefix, f.prompt, 4 + 47);
  g.run(s);
  ASSERT_EQ(s.generated.size(), 6u);
  // The next turn: the history with one token changed at the end plus a new message (as chat does).
  std::vector<int32_t> next = s.tokens;
  next.back() = 22;
  for (int32_t t : encode_chat_turn(f.tk, {true, "Is it round?"})) next.push_back(t);
  for (int32_t t : encode_answer_cue(f.tk)) next.push_back(t);
  g.resume(s, next);
  GenerationState fresh = g.start(f.prefix, next, 4 + 47);
  ASSERT_EQ(s.logits.size(), fresh.logits.size());
  for (size_t i = 0; i < s.logits.size(); ++i) ASSERT_NEAR(s.logits[i], fresh.logits[i], 1e-4) << i;
  EXPECT_EQ(g.run(s), g.run(fresh));
  // A prompt that does not fit the context is refused.
  std::vector<int32_t> too_long(60, 22);
  EXPECT_THROW(g.resume(s, too_long), Error);
}

TEST(Generator, StopSequencesAndLimits) {
  Fixture f;
  const std::vector<int32_t> greedy = ids_of(f.expected.get("greedy_ids"));
  GenerationOptions go;
  go.max_new_tokens = 24;
  go.stop_ids = {2};
  // Stop at the first occurrence of greedy[5..7): the answer is greedy[0..5), and the tokens handed out
  // one by one never include a token of the stop sequence.
  go.stop_sequences = {{greedy[5], greedy[6]}};
  size_t first = 0;
  while (first + 1 < greedy.size() && !(greedy[first] == greedy[5] && greedy[first + 1] == greedy[6])) ++first;
  Generator g(f.vlm->model->llm(), go);
  GenerationState s = g.start(f.prefix, f.prompt);
  std::vector<int32_t> streamed;
  g.run(s, [&](int32_t t) { streamed.push_back(t); });
  EXPECT_EQ(s.stop, StopReason::StopSequence);
  EXPECT_EQ(s.generated, std::vector<int32_t>(greedy.begin(), greedy.begin() + int64_t(first)));
  EXPECT_EQ(streamed, s.generated);
  EXPECT_EQ(s.tokens.size(), f.prompt.size() + first);
  // A stop id ends the answer without being part of it.
  go.stop_sequences.clear();
  go.stop_ids = {greedy[3]};
  Generator g2(f.vlm->model->llm(), go);
  GenerationState s2 = g2.start(f.prefix, f.prompt);
  g2.run(s2);
  EXPECT_EQ(s2.stop, StopReason::StopId);
  EXPECT_EQ(s2.generated, std::vector<int32_t>(greedy.begin(), greedy.begin() + 3));
  // The token limit and a full context.
  EXPECT_EQ(f.answer(1.0, true, 5), std::vector<int32_t>(greedy.begin(), greedy.begin() + 5));
  go.stop_ids = {2};
  Generator g3(f.vlm->model->llm(), go);
  GenerationState s3 = g3.start(f.prefix, f.prompt, 4 + int64_t(f.prompt.size()) + 3);
  g3.run(s3);
  EXPECT_EQ(s3.stop, StopReason::ContextFull);
  EXPECT_EQ(s3.generated, std::vector<int32_t>(greedy.begin(), greedy.begin() + 3));
}

TEST(Generator, OptionsAreRangeCheckedNamingTheOption) {
  auto message = [](GenerationOptions o) {
    try {
      validate_generation_options(o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  GenerationOptions o;
  EXPECT_EQ(message(o), "");
  o.sampling.temperature = -0.5;
  EXPECT_NE(message(o).find("--temperature"), std::string::npos);
  o = {};
  o.sampling.top_k = -1;
  EXPECT_NE(message(o).find("--top-k"), std::string::npos);
  o = {};
  o.sampling.top_p = 0;
  EXPECT_NE(message(o).find("--top-p"), std::string::npos);
  o = {};
  o.sampling.repetition_penalty = 0;
  EXPECT_NE(message(o).find("--repetition-penalty"), std::string::npos);
  o = {};
  o.max_new_tokens = 0;
  EXPECT_NE(message(o).find("--max-tokens"), std::string::npos);
}

TEST(Generator, SamplingIsSeededAndStaysInTheTopK) {
  Fixture f;
  GenerationOptions go;
  go.sampling.temperature = 1.5;
  go.sampling.top_k = 3;
  go.max_new_tokens = 12;
  go.seed = 7;
  Generator g(f.vlm->model->llm(), go);
  GenerationState a = g.start(f.prefix, f.prompt), b = g.start(f.prefix, f.prompt);
  EXPECT_EQ(g.run(a), g.run(b)) << "same seed, same tokens";
  // Each sampled token is among the 3 most likely under the logits it was drawn from.
  GenerationState c = g.start(f.prefix, f.prompt);
  while (!c.done()) {
    std::vector<float> l = c.logits;
    std::vector<float> sorted = l;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    const int32_t t = g.step(c);
    if (t >= 0) EXPECT_GE(l[size_t(t)], sorted[2]);
  }
}

// Every piece the stream hands out is whole UTF-8, and the pieces together are the full decode, for text
// whose multi-byte characters are split over byte tokens (the fixture tokenizer has no merges for them).
TEST(TextStream, SplitMultiByteCharactersStreamWhole) {
  const tok::Tokenizer tk = tok::Tokenizer::load(kTokenizer);
  const std::string text = " the shape is r\xC3\xA9" "d \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82!";
  const std::vector<int32_t> ids = tk.encode(text);
  ASSERT_EQ(tk.decode(ids), text);
  size_t split = 0;  // tokens that end inside a character
  for (int32_t id : ids) {
    const std::string one = tk.decode(std::vector<int32_t>{id});
    if (one.find("\xEF\xBF\xBD") != std::string::npos) ++split;
  }
  EXPECT_GE(split, 6u) << "the test needs characters cut across tokens";
  TextStream stream(tk);
  std::string joined;
  for (int32_t id : ids) {
    const std::string piece = stream.push(id);
    EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << "a piece holds a cut character";
    joined += piece;
  }
  joined += stream.finish();
  EXPECT_EQ(joined, tk.decode(ids));

  // Ill-formed bytes (a character cut short by an ASCII byte, a stray continuation byte, a truncated
  // tail) come out as decode gives them, U+FFFD included.
  const int32_t byte0 = tk.token_to_id("!") - 0x21;  // the byte symbols sit in byte order after the specials
  ASSERT_EQ(tk.decode(std::vector<int32_t>{byte0 + 'A'}), "A");
  std::vector<int32_t> bad;
  for (unsigned char b : std::string("\xE4\xB8" "a\x80" "b\xC3\xA9\xF0\x9F")) bad.push_back(byte0 + b);
  TextStream s2(tk);
  std::string j2;
  for (int32_t id : bad) j2 += s2.push(id);
  j2 += s2.finish();
  EXPECT_EQ(j2, tk.decode(bad));
  EXPECT_NE(j2.find("\xEF\xBF\xBD"), std::string::npos);
}

TEST(ChatPrompt, TurnsAreFormattedAsInTraining) {
  const tok::Tokenizer tk = tok::Tokenizer::load(kTokenizer);
  EXPECT_EQ(clean_chat_message("  <image>\nWhat is it?  "), "What is it?");
  EXPECT_EQ(encode_chat_turn(tk, {true, "<image> What colour is the shape? "}), tk.encode(" USER: What colour is the shape?"));
  EXPECT_EQ(encode_chat_turn(tk, {false, "red"}), tk.encode(" ASSISTANT: red"));
  EXPECT_EQ(encode_question_prompt(tk, "What?"), tk.encode(" USER: What? ASSISTANT:"));
  EXPECT_EQ(encode_answer_cue(tk), tk.encode(" ASSISTANT:"));
}
