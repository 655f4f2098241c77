## TrustRun R start-up shim: makes R's curl package (and so httr) trust TrustRun's CA bundle.
## `trustrun ca env` writes this file into the data directory from the template shipped with
## TrustRun and points R_PROFILE at it; it is rewritten each time, so do not edit it.
##
## R_PROFILE takes the place of R's site profile, so this file sources the one R would otherwise
## have read (Rprofile.site in R.home("etc"), or the R_PROFILE set before). curl >= 5.2.0 reads
## CURL_CA_BUNDLE by itself; older versions (Debian 12 ships 5.0.0) ignore it on Linux, so every
## new curl handle gets `cainfo` here, also after handle_reset() (httr resets its pooled handles
## after each request). Options a caller sets on a handle still win. `Rscript --vanilla` and
## `R --no-site-file` skip this file.
local({
  bundle <- "@@BUNDLE@@"
  site <- "@@SITE_PROFILE@@"
  if (!nzchar(site)) site <- file.path(R.home("etc"), "Rprofile.site")

  trust_bundle <- function(...) {
    if (!file.exists(bundle)) return(invisible(NULL))
    ns <- asNamespace("curl")
    swap <- function(name, make) {
      orig <- get(name, envir = ns, inherits = FALSE)
      if (isTRUE(attr(orig, "trustrun_ca"))) return(invisible(NULL))
      f <- make(orig)
      attr(f, "trustrun_ca") <- TRUE
      locked <- bindingIsLocked(name, ns)
      if (locked) unlockBinding(name, ns)
      assign(name, f, envir = ns)
      if (locked) lockBinding(name, ns)
    }
    swap("new_handle", function(orig) function(...) {
      h <- orig()
      curl::handle_setopt(h, cainfo = bundle)
      if (...length() > 0L) curl::handle_setopt(h, ...)
      h
    })
    swap("handle_reset", function(orig) function(handle) {
      orig(handle)
      curl::handle_setopt(handle, cainfo = bundle)
      invisible(handle)
    })
  }

  # The hook goes in before the site profile runs, so a site profile that loads curl is covered.
  if ("curl" %in% loadedNamespaces()) {
    trust_bundle()
  } else {
    setHook(packageEvent("curl", "onLoad"), trust_bundle)
  }
  if (file.exists(site)) sys.source(site, envir = baseenv())
})
