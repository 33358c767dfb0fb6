// `caas-billing plans list|show`: the plan catalog in force (the built-in
// defaults, or the file named by --catalog / CAAS_BILLING_CATALOG).
#pragma once

#include <string>

namespace caas::app {

int RunPlansList(const std::string& catalog_file);
int RunPlansShow(const std::string& catalog_file, const std::string& plan, int version);

}  // namespace caas::app
