"""twinbill API gateway: authentication, project access and routing to the services."""
