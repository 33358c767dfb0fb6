// Strict readers of stored JSON documents, shared by the modules' codecs: a
// missing or mistyped field is corruption (Corrupt, naming the field), which
// the codec turns into its error and the service into CorruptDocument.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/money.h"
#include "core/time.h"

namespace caas::storage::fields {

struct Corrupt : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const boost::json::value& At(const boost::json::object& o, std::string_view k);
const boost::json::object& Obj(const boost::json::object& o, std::string_view k);
const boost::json::array& Arr(const boost::json::object& o, std::string_view k);
const boost::json::object& AsObj(const boost::json::value& v, std::string_view what);
std::string Str(const boost::json::object& o, std::string_view k);
int64_t Int(const boost::json::object& o, std::string_view k);
bool Bool(const boost::json::object& o, std::string_view k);
Instant Time(const boost::json::object& o, std::string_view k);
std::optional<Instant> OptTime(const boost::json::object& o, std::string_view k);
boost::json::value OptTimeJson(const std::optional<Instant>& t);
const Currency& CurrencyOf(const boost::json::object& o, std::string_view k);
Period PeriodOf(const boost::json::object& o);
boost::json::object PeriodJson(const Period& p);

}  // namespace caas::storage::fields
