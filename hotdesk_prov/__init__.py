"""``hotdesk prov-serve``: the optional lean HTTP server for phone configs."""
