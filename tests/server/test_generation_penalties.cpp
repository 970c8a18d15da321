// OpenAI's frequency and presence penalties in the generator (the server's frequency_penalty and
// presence_penalty): every greedy choice is the argmax of the logits less frequency * count + presence
// for each token already generated, and they change the tiny fixture model's answer (which repeats a
// token five times without them).
#include <gtest/gtest.h>

#include <algorithm>

#include "model/chat_prompt.h"
#include "model/generator.h"
#include "model/vlm.h"
#include "tokenizer/bpe.h"

using namespace tv;

namespace {
const std::string kDir = std::string(TV_FIXTURE_DIR) + "/torch/";
}

TEST(GenerationPenalties, GreedyChoicesFollowOpenAIsFormula) {
  std::unique_ptr<LoadedVlm> vlm = load_vlm(kDir + "tiny_instruct.pt", kDir + "ask_config.toml");
  const tok::Tokenizer tk = tok::Tokenizer::load(kDir + "ask_tokenizer.json");
  const Tensor prefix = vlm->model->image_prefix_from_file(kDir + "ask_image.png");
  const std::vector<int32_t> prompt = encode_question_prompt(tk, "What colour is the shape?");
  auto answer = [&](double freq, double pres) {
    GenerationOptions go;
    go.max_new_tokens = 24;
    go.stop_ids = {2};
    go.frequency_penalty = freq;
    go.presence_penalty = pres;
    validate_generation_options(go);
    Generator g(vlm->model->llm(), go);
    GenerationState s = g.start(prefix, prompt);
    while (!s.done()) {
      std::vector<float> l = s.logits;
      for (size_t t = 0; t < l.size(); ++t) {
        const int64_t c = std::count(s.generated.begin(), s.generated.end(), int32_t(t));
        if (c) l[t] -= float(double(c) * freq + pres);
      }
      const int32_t want = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
      const int32_t got = g.step(s);
      if (got < 0) {
        EXPECT_EQ(want, 2);  // stopped at EOS, which was the choice
      } else {
        EXPECT_EQ(got, want) << "step " << s.generated.size();
      }
    }
    return s.generated;
  };
  const std::vector<int32_t> plain = answer(0, 0);
  const std::vector<int32_t> freq = answer(1.5, 0);
  const std::vector<int32_t> pres = answer(0, 2);
  answer(-1, 0.5);
  EXPECT_NE(plain, freq);
  EXPECT_NE(plain, pres);
  // Without a penalty the answer repeats a token; a presence penalty of 2 makes repeats rarer.
  auto max_repeat = [](const std::vector<int32_t>& v) {
    int64_t m = 0;
    for (int32_t t : v) m = std::max<int64_t>(m, std::count(v.begin(), v.end(), t));
    return m;
  };
  EXPECT_GE(max_repeat(plain), 5);
  EXPECT_LT(max_repeat(pres), max_repeat(plain));
  GenerationOptions bad;
  bad.frequency_penalty = 2.5;
  EXPECT_THROW(validate_generation_options(bad), std::exception);
}
