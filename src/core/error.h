// Errors: every failure the engine reports is a wenet_rt::Error carrying a readable message that
// names the file / key / value involved. The library never aborts on bad input.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace wenet_rt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// Throws with the formatted message when `cond` is false.
#define WENET_CHECK(cond, ...)                    \
  do {                                            \
    if (!(cond)) ::wenet_rt::fail(__VA_ARGS__);   \
  } while (0)

}  // namespace wenet_rt
