// Errors: every failure is a tv::Error carrying a message that says what was expected and where.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace tv {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(str_cat(std::forward<Args>(args)...));
}

}  // namespace tv

// TV_CHECK(cond, "message parts", ...): throws tv::Error naming the source line when cond is false.
#define TV_CHECK(cond, ...)                                                                   \
  do {                                                                                        \
    if (!(cond)) ::tv::fail(__FILE__, ":", __LINE__, ": check failed: " #cond " " __VA_OPT__(, ) __VA_ARGS__); \
  } while (0)
