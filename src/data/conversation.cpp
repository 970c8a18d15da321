#include "data/conversation.h"

#include <algorithm>

#include "core/error.h"
#include "core/ignore_index.h"
#include "tokenizer/bpe.h"

namespace tv {

namespace {

// Python's str.isspace() for one code point.
bool py_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// Decodes the code point starting at s[i] (invalid bytes count as one non-space unit); returns its length.
size_t decode_at(const std::string& s, size_t i, uint32_t& c) {
  const unsigned char b = static_cast<unsigned char>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    c = 0xfffd;
    return 1;
  }
  c = n == 1 ? b : n == 2 ? (b & 0x1f) : n == 3 ? (b & 0x0f) : (b & 0x07);
  for (size_t k = 1; k < n; ++k) {
    const unsigned char x = static_cast<unsigned char>(s[i + k]);
    if ((x >> 6) != 2) {
      c = 0xfffd;
      return 1;
    }
    c = (c << 6) | (x & 0x3f);
  }
  return n;
}

}  // namespace

ConversationFormat conversation_format(const tok::Tokenizer& tokenizer, int64_t vocab_size, int64_t max_seq_len,
                                       const std::string& name) {
  if (max_seq_len < 2) fail("instruct_max_seq_len must be at least 2 (<image> and one more token), got ", max_seq_len);
  ConversationFormat f;
  f.max_seq_len = max_seq_len;
  f.image_id = int32_t(vocab_size);
  const int32_t img = tokenizer.token_to_id("<image>");
  if (img >= 0 && img != vocab_size)
    fail(name, ": <image> has id ", img, " but the model puts it right after the text vocabulary, at vocab_size = ",
         vocab_size);
  const int32_t bound = tokenizer.id_bound();
  if (bound > vocab_size + (img >= 0 ? 1 : 0))
    fail(name, ": the tokenizer has ids up to ", bound - 1, " but vocab_size = ", vocab_size);
  f.eos_id = tokenizer.token_to_id("</s>");
  if (f.eos_id < 0) fail(name, ": the tokenizer has no </s> (end of sequence) token");
  const int32_t pad = tokenizer.token_to_id("<pad>");
  f.pad_id = pad > 0 ? pad : 0;  // the original: token_to_id("<pad>") or 0
  return f;
}

bool is_user_role(const std::string& from) { return from.find("human") != std::string::npos; }

std::string clean_message(const std::string& message) {
  std::string s;
  s.reserve(message.size());
  for (size_t i = 0; i < message.size();) {
    if (message.compare(i, 7, "<image>") == 0) {
      i += 7;
      continue;
    }
    s.push_back(message[i++]);
  }
  size_t begin = 0, end = s.size();
  while (begin < end) {
    uint32_t c;
    const size_t n = decode_at(s, begin, c);
    if (!py_space(c)) break;
    begin += n;
  }
  while (end > begin) {  // step back to the start of the last code point
    size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(s[start]) >> 6) == 2 && end - start < 4) --start;
    uint32_t c;
    const size_t n = decode_at(s, start, c);
    if (start + n != end || !py_space(c)) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

std::string turn_text(bool user, const std::string& message) {
  return std::string(user ? " USER: " : " ASSISTANT: ") + clean_message(message);
}

std::vector<int32_t> encode_turn(const tok::Tokenizer& tokenizer, bool user, const std::string& message) {
  return tokenizer.encode(turn_text(user, message));
}

int64_t FormattedConversation::labelled() const {
  return int64_t(std::count_if(labels.begin(), labels.end(), [](int32_t l) { return l != kIgnoreIndex; }));
}

FormattedConversation format_conversation(const tok::Tokenizer& tokenizer, const std::vector<ConversationTurn>& turns,
                                          const ConversationFormat& f) {
  std::vector<std::vector<int32_t>> tokens;
  tokens.reserve(turns.size());
  for (const ConversationTurn& t : turns) tokens.push_back(encode_turn(tokenizer, t.user, t.message));
  return assemble_conversation(turns, tokens, f);
}

FormattedConversation assemble_conversation(const std::vector<ConversationTurn>& turns,
                                            const std::vector<std::vector<int32_t>>& turn_tokens,
                                            const ConversationFormat& f) {
  TV_CHECK(turns.size() == turn_tokens.size(), "assemble_conversation: ", turns.size(), " turns but ",
           turn_tokens.size(), " token lists");
  FormattedConversation c;
  c.ids.push_back(f.image_id);
  c.labels.push_back(kIgnoreIndex);
  for (size_t i = 0; i < turns.size(); ++i) {
    const std::vector<int32_t>& tokens = turn_tokens[i];
    c.ids.insert(c.ids.end(), tokens.begin(), tokens.end());
    if (turns[i].user)
      c.labels.insert(c.labels.end(), tokens.size(), kIgnoreIndex);
    else
      c.labels.insert(c.labels.end(), tokens.begin(), tokens.end());
  }
  c.ids.push_back(f.eos_id);
  c.labels.push_back(f.eos_id);
  if (int64_t(c.ids.size()) > f.max_seq_len) {
    c.ids.resize(size_t(f.max_seq_len));
    c.labels.resize(size_t(f.max_seq_len));
    c.truncated = true;
  }
  return c;
}

}  // namespace tv
