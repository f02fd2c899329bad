// After a drag on the VIP group list, show the order the server kept: it renumbers the
// groups and keeps the default group last, whatever was dropped where.
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  const config = document.getElementById("admin_sortable2_config");
  if (!config) {
    return;
  }
  const updateUrl = JSON.parse(config.textContent).update_url;
  const fetchBefore = window.fetch.bind(window);
  window.fetch = async function (resource, options) {
    const response = await fetchBefore(resource, options);
    if (String(resource) === updateUrl) {
      if (!response.ok) {
        window.alert(await response.clone().text());
      }
      window.location.reload();
    }
    return response;
  };
});
